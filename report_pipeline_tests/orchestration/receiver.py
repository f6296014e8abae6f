"""A webhook endpoint on loopback for alert tests: records what it accepts, can refuse the next N
posts or answer every request its own way."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook on loopback that records what it accepts and can refuse the next N posts."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        answer: Callable[[BaseHTTPRequestHandler], None] | None = None,
    ) -> None:
        self.received: list[dict] = []
        self.requests: list[
            tuple[str, bytes]
        ] = []  # every request's method and body, however answered
        self.refuse = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append((self.command, body))
                if answer is not None:
                    answer(self)
                    return
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    self.send_response(503)
                else:
                    if body:  # a GET after a followed redirect has none, and is answered 200 too
                        receiver.received.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_PATCH = do_DELETE = (
                do_POST  # a followed redirect may change the method
            )

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hooks/secret-token"
        # a short poll interval so that stop() returns at once, not after half a second
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def about(self, saga_or_run_id: str) -> list[dict]:
        return [m for m in self.received if saga_or_run_id in json.dumps(m)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
