"""A webhook endpoint on loopback for alert tests: records what it accepts, can refuse the next N posts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A webhook endpoint on loopback that records what it accepts and can refuse the next N posts."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.refuse = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.refuse > 0:
                    receiver.refuse -= 1
                    self.send_response(503)
                else:
                    receiver.received.append(json.loads(body))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, saga_or_run_id: str) -> list[dict]:
        return [m for m in self.received if saga_or_run_id in json.dumps(m)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
