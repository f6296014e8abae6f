"""A fault-injecting HTTP proxy in front of any Trino: the local engine's fault API, for a real
cluster.

The client talks to the proxy as to a coordinator; every request is relayed to the upstream server
(which can be switched while the proxy runs) and every URL in an answer is rewritten to point back
at the proxy, so polls, cancels and query look-ups go through it too. Faults (`Fault`: a pattern
searched in the statement text, an action, how many times) act on `POST /v1/statement`:
- `error`: the statement never reaches the server; the client gets a FAILED document with the
  fault's Trino error (name, code, type, message);
- `stall`: the proxy holds the statement in QUEUED for `seconds`, answering polls itself, then
  submits it upstream; cancelling it meanwhile means it never reaches the server;
- `drop`: the statement is submitted and runs (the proxy polls it upstream), but every later poll or
  cancel of it gets its connection closed without an answer, so the client must look the query up
  by id (`/v1/query/{id}`, relayed) to learn its outcome.
A failure to reach the upstream is passed on the same way: the client's connection is closed.

Faults are managed as on the local engine: `GET/POST/DELETE /v1/local/faults`. Every submitted
statement is logged (`statements()`): text, user, source, time, and what the proxy did with it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from report_pipeline.local_trino.errors import error_code
from report_pipeline.local_trino.faults import Fault, FaultInjector

UPSTREAM_TIMEOUT_SECONDS = 60.0  # longer than any poll a Trino server holds open
STALLED_POLL_SECONDS = 1.0
# Hop-by-hop and length headers are the proxy's own business on each side.
SKIPPED_HEADERS = {
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "accept-encoding",
    "content-encoding",
}


@dataclass
class ProxiedStatement:
    sql: str
    user: str | None
    source: str | None
    submitted_at: float
    fault: str | None  # the action applied, if any
    query_id: str | None = None  # the upstream's id (None while it has not reached the upstream)


@dataclass
class _Stalled:
    statement: ProxiedStatement
    sql: bytes
    headers: dict[str, str]
    until: float
    started: float
    query_id: str
    cancelled: bool = False


class FaultProxy:
    """`with FaultProxy(upstream_url) as proxy:`; `proxy.url` is what the client connects to."""

    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0):
        self.upstream_url = upstream_url.rstrip("/")
        self.faults = FaultInjector()
        self._statements: list[ProxiedStatement] = []
        self._dropped: set[str] = set()
        self._stalled: dict[str, _Stalled] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._server = _Server((host, port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(self, fault: Fault) -> Fault:
        return self.faults.add(fault)

    def statements(self) -> list[ProxiedStatement]:
        with self._lock:
            return list(self._statements)

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- used by the handler ------------------------------------------------------------------

    def session(self) -> requests.Session:
        """One keep-alive upstream connection pool per handler thread."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def close_session(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
            self._local.session = None

    def record(self, statement: ProxiedStatement) -> None:
        with self._lock:
            self._statements.append(statement)
            if statement.fault == "drop" and statement.query_id:
                self._dropped.add(statement.query_id)

    def is_dropped(self, path: str) -> bool:
        """A poll or cancel of a dropped statement (its look-up by id, /v1/query/..., still
        answers)."""
        if not path.startswith("/v1/statement/"):
            return False
        with self._lock:
            return any(query_id in path for query_id in self._dropped)

    def proxy_query_id(self) -> str:
        """An id in Trino's format for a statement the proxy answers itself."""
        return time.strftime("%Y%m%d_%H%M%S", time.gmtime()) + f"_{next(self._ids):05d}_proxy"

    def stall(
        self, statement: ProxiedStatement, sql: bytes, headers: dict[str, str], seconds: float
    ) -> _Stalled:
        now = time.monotonic()
        stalled = _Stalled(statement, sql, headers, now + seconds, now, self.proxy_query_id())
        with self._lock:
            self._stalled[stalled.query_id] = stalled
        return stalled

    def stalled(self, query_id: str) -> _Stalled | None:
        with self._lock:
            return self._stalled.get(query_id)

    def release(self, query_id: str) -> None:
        with self._lock:
            self._stalled.pop(query_id, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    server_address: tuple[str, int]  # bound to an IPv4 host: getsockname() gives (text, port)

    def __init__(self, address: tuple[str, int], handler: type, proxy: FaultProxy):
        super().__init__(address, handler)
        self.proxy = proxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each answer is one small write: never wait for an ACK
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def finish(self) -> None:
        super().finish()
        self.server.proxy.close_session()  # one handler thread per client connection

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        proxy = self.server.proxy
        path = self.path.split("?", 1)[0]
        try:
            if path == "/v1/local/faults":
                self._faults(method)
            elif method == "POST" and path == "/v1/statement":
                self._submit()
            elif path.startswith("/v1/proxy/stalled/"):
                self._stalled(method, path.split("/")[4])
            elif proxy.is_dropped(path):
                self._drop_connection()
            else:
                self._relay(method, self._body())
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- statements ---------------------------------------------------------------------------

    def _submit(self) -> None:
        proxy = self.server.proxy
        body = self._body()
        sql = body.decode("utf-8", errors="replace")
        fault = proxy.faults.take(sql)
        user, source = self.headers.get("X-Trino-User"), self.headers.get("X-Trino-Source")
        action = fault.action if fault else None
        if fault is not None and fault.action == "error":
            proxy.record(ProxiedStatement(sql, user, source, time.time(), action, None))
            self._json(self._failed_document(fault))
            return
        if fault is not None and fault.action == "stall":
            statement = ProxiedStatement(sql, user, source, time.time(), action)
            proxy.record(statement)
            stalled = proxy.stall(statement, body, self._forwarded_headers(), fault.seconds)
            self._json(self._queued_document(stalled, 1))
            return
        response = self._forward("POST", "/v1/statement", body, self._forwarded_headers())
        if response is None:
            return
        query_id = _query_id(response)
        proxy.record(ProxiedStatement(sql, user, source, time.time(), action, query_id))
        if action == "drop":
            # Trino dispatches a statement at its first poll: the proxy polls it to the end itself,
            # so it runs while the client's own polls find their connection closed.
            threading.Thread(
                target=_drive_to_completion,
                args=(response, self._forwarded_headers()),
                name="fault-proxy-drop",
                daemon=True,
            ).start()
        self._answer(response)

    def _stalled(self, method: str, query_id: str) -> None:
        proxy = self.server.proxy
        stalled = proxy.stalled(query_id)
        if stalled is None or stalled.cancelled:
            self._error(HTTPStatus.GONE, f"Query not found: {query_id}")
            return
        if method == "DELETE":
            stalled.cancelled = True
            proxy.release(query_id)
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        remaining = stalled.until - time.monotonic()
        if remaining > 0:
            time.sleep(min(remaining, STALLED_POLL_SECONDS))
            if time.monotonic() < stalled.until:
                token = int(self.path.rstrip("/").rsplit("/", 1)[-1])
                self._json(self._queued_document(stalled, token + 1))
                return
        proxy.release(query_id)
        response = self._forward("POST", "/v1/statement", stalled.sql, stalled.headers)
        if response is not None:
            stalled.statement.query_id = _query_id(response)
            self._answer(response)

    # -- relaying -----------------------------------------------------------------------------

    def _relay(self, method: str, body: bytes) -> None:
        response = self._forward(method, self.path, body, self._forwarded_headers())
        if response is not None:
            self._answer(response)

    def _forward(
        self, method: str, path: str, body: bytes, headers: dict[str, str]
    ) -> requests.Response | None:
        proxy = self.server.proxy
        try:
            return proxy.session().request(
                method,
                proxy.upstream_url + path,
                data=body or None,
                headers=headers,
                timeout=UPSTREAM_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException:
            # the upstream is down or dropped us: so does the proxy, and the client sees a lost
            # connection
            self._drop_connection()
            return None

    def _forwarded_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers.items() if k.lower() not in SKIPPED_HEADERS}

    def _answer(self, response: requests.Response) -> None:
        proxy = self.server.proxy
        body = response.content.replace(proxy.upstream_url.encode(), proxy.url.encode())
        self.send_response(response.status_code)
        for name, value in response.headers.items():
            if name.lower() not in SKIPPED_HEADERS:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- documents the proxy writes itself ------------------------------------------------------

    def _queued_document(self, stalled: _Stalled, token: int) -> dict:
        elapsed = int((time.monotonic() - stalled.started) * 1000)
        slug = secrets.token_hex(4)
        url = self.server.proxy.url
        return {
            "id": stalled.query_id,
            "infoUri": f"{url}/ui/query.html?{stalled.query_id}",
            "nextUri": f"{url}/v1/proxy/stalled/{stalled.query_id}/{slug}/{token}",
            "stats": _stats("QUEUED", elapsed),
        }

    def _failed_document(self, fault: Fault) -> dict:
        code = error_code(fault.error_name, fault.error_type)
        query_id = self.server.proxy.proxy_query_id()
        return {
            "id": query_id,
            "infoUri": f"{self.server.proxy.url}/ui/query.html?{query_id}",
            "stats": _stats("FAILED", 0),
            "error": {
                "message": fault.message,
                "errorCode": code.code,
                "errorName": code.name,
                "errorType": code.type.value,
                "failureInfo": {
                    "type": "io.trino.spi.TrinoException",
                    "message": fault.message,
                    "suppressed": [],
                    "stack": [],
                },
            },
        }

    # -- the fault API ------------------------------------------------------------------------

    def _faults(self, method: str) -> None:
        faults = self.server.proxy.faults
        if method == "GET":
            self._json([f.to_json() for f in faults.list()])
        elif method == "POST":
            try:
                fault = Fault.from_json(json.loads(self._body() or b"{}"))
            except (ValueError, TypeError) as error:
                self._error(HTTPStatus.BAD_REQUEST, f"Invalid fault: {error}")
                return
            self._json(faults.add(fault).to_json(), HTTPStatus.CREATED)
        elif method == "DELETE":
            faults.clear()
            self.send_response(HTTPStatus.NO_CONTENT)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._error(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on /v1/local/faults"
            )

    # -- plumbing -----------------------------------------------------------------------------

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, document: object, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: HTTPStatus, message: str) -> None:
        body = message.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drop_connection(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have closed it already
            self.connection.shutdown(socket.SHUT_RDWR)


def _drive_to_completion(response: requests.Response, headers: dict[str, str]) -> None:
    """Follow a statement's nextUri until it ends, discarding its results."""
    with requests.Session() as session:
        document = response.json() if response.ok else {}
        while document.get("nextUri"):
            try:
                document = session.get(
                    document["nextUri"], headers=headers, timeout=UPSTREAM_TIMEOUT_SECONDS
                ).json()
            except (requests.RequestException, ValueError):
                return


def _query_id(response: requests.Response) -> str | None:
    try:
        return response.json().get("id")
    except ValueError:
        return None


def _stats(state: str, elapsed_millis: int) -> dict:
    return {
        "state": state,
        "queued": state == "QUEUED",
        "scheduled": False,
        "nodes": 0,
        "totalSplits": 0,
        "queuedSplits": 0,
        "runningSplits": 0,
        "completedSplits": 0,
        "cpuTimeMillis": 0,
        "wallTimeMillis": 0,
        "queuedTimeMillis": elapsed_millis,
        "elapsedTimeMillis": elapsed_millis,
        "processedRows": 0,
        "processedBytes": 0,
        "physicalInputBytes": 0,
        "peakMemoryBytes": 0,
        "spilledBytes": 0,
    }


__all__ = ["FaultProxy", "ProxiedStatement"]
