"""The Trino client REST protocol (v1) over HTTP, in front of the engine.

A statement is submitted with `POST /v1/statement` and answered with a QUEUED document whose
`nextUri` the client polls. Every poll carries a token; the engine answers a repeated token with
the same document (the client retries polls) and the next token with the next page. A poll waits
up to a second for news (long polling), so progress flows without busy loops. `DELETE nextUri`
cancels. `GET/DELETE /v1/query/{id}` look a query up or cancel it without its cursor. Under
`/v1/local/` the engine exposes what only a test engine has: counters, and fault injection when the
engine was started with it (`EngineConfig.fault_injection`; otherwise the path does not exist).

Whatever arrives is answered with Trino-style JSON, malformed requests included, and a request body
is acted on only when it is exactly as long as its Content-Length says.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import logging
import re
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote_plus, urlsplit

from report_pipeline.local_trino.dialect import ENGINE_VERSION
from report_pipeline.local_trino.engine import Engine
from report_pipeline.local_trino.errors import TrinoError
from report_pipeline.local_trino.faults import Fault
from report_pipeline.local_trino.query import Query, QueryState, Session
from report_pipeline.local_trino.transactions import parse_header as parse_transaction_header

log = logging.getLogger(__name__)

POLL_WAIT_SECONDS = 1.0
# Trino's query.max-length: longer SQL fails with QUERY_TEXT_TOO_LARGE.
MAX_QUERY_LENGTH = 1_000_000
# No character takes more than 4 bytes of UTF-8, so a larger body cannot hold an acceptable
# statement: it is refused unread.
MAX_BODY_BYTES = 4 * MAX_QUERY_LENGTH
# How long a connection may sit silent mid-request (or idle between requests) before it is closed.
READ_TIMEOUT_SECONDS = 30.0
_STATEMENT_PATH = re.compile(r"^/v1/statement/(queued|executing)/([\w]+)/([0-9a-f]+)/(\d+)$")
_QUERY_PATH = re.compile(r"^/v1/query/([\w]+)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client polls many times per statement
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait for an ACK
    server_version = "local-trino/" + ENGINE_VERSION
    server: _HttpServer
    _request_body: bytes
    # the session changes of the statement answered (sent as headers), None for other answers
    _query_headers: dict[str, list[str]] | None = None

    # a property where the stdlib has a class attribute: the timeout is each server's own
    @property
    def timeout(self) -> float:  # type: ignore[override]
        # StreamRequestHandler puts it on the socket: a client that goes silent mid-request cannot
        # hold a server thread for ever (the stdlib then closes the connection).
        return self.server.read_timeout

    # --- malformed requests ---------------------------------------------------------------------
    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        # `GET /path` alone: an answer without status or headers
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/0.9 is not supported")
            return False
        return True

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stdlib answers what it cannot parse (400, 414, 431, 501, ...) with an HTML page; a
        # Trino client gets JSON from every answer here, errors included.
        status = HTTPStatus(code)
        self._query_headers = None  # a previous statement's session changes are not this answer's
        # the rest of a request that could not be parsed cannot be trusted
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            # otherwise the stdlib leaves out the status line and headers
            self.request_version = "HTTP/1.1"
        text = (
            status.phrase
            if not message or message == status.phrase
            else f"{status.phrase}: {message}"
        )
        if explain:
            text += f" ({explain})"
        self._error(status, text)

    # --- dispatch -------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        self._query_headers = None  # a previous poll's on this connection are not this answer's
        try:
            body = self._read_body()
            if body is None:
                return
            self._request_body = body
            path = urlsplit(self.path).path
            routes: list[tuple[str, dict[str, Callable[..., None]]]] = [
                (r"^/v1/statement$", {"POST": self._submit}),
                (_STATEMENT_PATH.pattern, {"GET": self._poll, "DELETE": self._cancel_statement}),
                (_QUERY_PATH.pattern, {"GET": self._query_info, "DELETE": self._cancel_query}),
                (r"^/v1/info$", {"GET": self._server_info}),
                (r"^/ui/query\.html$", {"GET": self._query_page}),
                (r"^/v1/local/stats$", {"GET": self._engine_stats}),
            ]
            # only an engine started for tests or demos has it
            if self.server.engine.config.fault_injection:
                routes.append(
                    (
                        r"^/v1/local/faults$",
                        {
                            "GET": self._list_faults,
                            "POST": self._add_fault,
                            "DELETE": self._clear_faults,
                        },
                    )
                )
            for pattern, handlers in routes:
                match = re.match(pattern, path)
                if match:
                    handler = handlers.get(method)
                    if handler is None:
                        self._error(
                            HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed on {path}"
                        )
                    else:
                        handler(*match.groups())
                    return
            self._error(HTTPStatus.NOT_FOUND, f"No resource at {path}", name="NOT_FOUND")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:
            log.exception("request %s %s failed", method, self.path)
            self._error(
                HTTPStatus.INTERNAL_SERVER_ERROR,
                f"{type(error).__name__}: {error}",
                name="GENERIC_INTERNAL_ERROR",
            )

    # --- statements -----------------------------------------------------------------------------
    def _submit(self) -> None:
        user = self.headers.get("X-Trino-User")
        if not user:
            self._error(HTTPStatus.BAD_REQUEST, "User must be set (X-Trino-User header)")
            return
        sql = self._request_body.decode("utf-8", errors="replace")
        if not sql.strip():
            self._error(HTTPStatus.BAD_REQUEST, "SQL statement is empty")
            return
        try:
            session = self._session(user)
        except ValueError as error:
            self._error(HTTPStatus.BAD_REQUEST, str(error))
            return
        query = self.server.engine.submit(sql, session)
        doc = self._base_document(query)
        doc["nextUri"] = self._next_uri(query, "queued", 1)
        if len(sql) > MAX_QUERY_LENGTH:
            # As Trino: accepted (QUEUED), then failed before anything runs. (Trino counts UTF-16
            # units, this code points: they differ only for characters outside the BMP.)
            query.fail(
                TrinoError(
                    "QUERY_TEXT_TOO_LARGE",
                    f"Query text length ({len(sql)}) exceeds "
                    f"the maximum length ({MAX_QUERY_LENGTH})",
                )
            )
        self.server.engine.start(query)
        self._json(HTTPStatus.OK, doc)

    def _session(self, user: str) -> Session:
        properties = {}
        for item in _header_items(self.headers.get("X-Trino-Session", "")):
            name, _, value = item.partition("=")
            properties[name.strip()] = unquote_plus(value.strip())
        prepared = {}
        for item in _header_items(self.headers.get("X-Trino-Prepared-Statement", "")):
            name, _, value = item.partition("=")
            prepared[name.strip()] = unquote_plus(value.strip())
        return Session(
            user=user,
            source=self.headers.get("X-Trino-Source"),
            catalog=self.headers.get("X-Trino-Catalog") or None,
            schema=self.headers.get("X-Trino-Schema") or None,
            # SET TIME ZONE keeps the zone in the hidden session property time_zone_id
            time_zone=properties.get("time_zone_id")
            or self.headers.get("X-Trino-Time-Zone")
            or None,
            properties=properties,
            prepared=prepared,
            transaction_id=parse_transaction_header(self.headers.get("X-Trino-Transaction-Id")),
        )

    def _poll(self, _phase: str, query_id: str, slug: str, token: str) -> None:
        query = self._find(query_id, slug)
        if query is None:
            return
        query.touch()
        if query.drop_connections:
            self._drop_connection()
            return
        token_number = int(token)
        with query.page_lock:
            last_served = query.page_document is not None and "nextUri" not in query.page_document
            if token_number == query.page_token and query.page_document is not None:
                document = query.page_document
            elif token_number == query.page_token + 1 and not last_served:
                document = self._next_document(query, token_number)
                query.page_token, query.page_document = token_number, document
            else:
                # Trino signs each nextUri for its token, so any other token (an older one, one past
                # the last page, one skipping ahead) is answered as an unknown query: 404.
                self._error(HTTPStatus.NOT_FOUND, f"Query not found: {query_id}", name="NOT_FOUND")
                return
        self._query_headers = query.response_headers  # session changes made by the statement
        self._json(HTTPStatus.OK, document)

    def _next_document(self, query: Query, token: int) -> dict:
        if query.result is None and not query.state.done:
            query.wait(POLL_WAIT_SECONDS)
        doc = self._base_document(query)
        result = query.result
        if query.error is None and result is not None:
            try:
                rows, last = query.next_rows(self.server.engine.config.page_rows)
            except TrinoError as error:
                query.fail(error)  # a no-op when a cancel interrupted the fetch: its error stands
            else:
                if query.error is not None:
                    # cancelled while fetching: the page may be cut short, and must not pass for
                    # the end
                    return self._next_document_failed(query, query.error, doc)
                doc["columns"] = result.columns
                if rows:
                    doc["data"] = rows
                if result.update_type:
                    doc["updateType"] = result.update_type
                if result.update_count is not None:
                    doc["updateCount"] = result.update_count
                if not last:
                    doc["nextUri"] = self._next_uri(query, "executing", token + 1)
                doc["stats"] = query.stats()
                return doc
        if query.error is not None:
            return self._next_document_failed(query, query.error, doc)
        doc["nextUri"] = self._next_uri(query, "executing", token + 1)
        return doc

    @staticmethod
    def _next_document_failed(query: Query, error: TrinoError, doc: dict) -> dict:
        doc["stats"] = query.stats()
        doc["error"] = error.to_json()
        return doc

    def _cancel_statement(self, _phase: str, query_id: str, slug: str, _token: str) -> None:
        if self._find(query_id, slug) is not None:
            self.server.engine.cancel(query_id)
            self._no_content()

    def _base_document(self, query: Query) -> dict:
        return {
            "id": query.id,
            "infoUri": f"{self._base_url()}/ui/query.html?{query.id}",
            "stats": query.stats(),
        }

    def _next_uri(self, query: Query, phase: str, token: int) -> str:
        return f"{self._base_url()}/v1/statement/{phase}/{query.id}/{query.slug}/{token}"

    def _find(self, query_id: str, slug: str) -> Query | None:
        # Trino answers 404 on the statement path for any query it does not know (expired ones too).
        query = self.server.engine.get(query_id)
        if query is None or query.slug != slug:
            self._error(HTTPStatus.NOT_FOUND, f"Query not found: {query_id}", name="NOT_FOUND")
            return None
        return query

    # --- query lookup ---------------------------------------------------------------------------
    def _query_info(self, query_id: str) -> None:
        query = self._lookup(query_id)
        if query is not None:
            self._json(HTTPStatus.OK, query.info(self._base_url()))

    def _cancel_query(self, query_id: str) -> None:
        self.server.engine.cancel(query_id)  # as Trino: 204 whether or not the query is known
        self._no_content()

    def _lookup(self, query_id: str) -> Query | None:
        # Trino answers 410 Gone for a query it does not know, never seen or expired alike.
        query = self.server.engine.get(query_id)
        if query is None:
            expired = self.server.engine.was_expired(query_id)
            self._error(
                HTTPStatus.GONE,
                f"Query {query_id} has expired" if expired else f"Query not found: {query_id}",
                name="NOT_FOUND",
            )
        return query

    def _query_page(self) -> None:
        query_id = urlsplit(self.path).query
        query = self._lookup(query_id)
        if query is None:
            return
        info = query.info(self._base_url())
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in [
                ("Query", info["queryId"]),
                ("State", info["state"]),
                ("User", query.session.user),
                ("Source", query.session.source),
                ("Error", query.error.message if query.error else ""),
                *info["queryStats"].items(),
            ]
        )
        page = (
            f"<!doctype html><title>Query {html.escape(query.id)}</title>"
            f"<h1>Query {html.escape(query.id)}</h1><table>{rows}</table>"
            f"<pre>{html.escape(query.sql)}</pre>"
        )
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _server_info(self) -> None:
        self._json(
            HTTPStatus.OK,
            {
                "nodeVersion": {"version": ENGINE_VERSION},
                "environment": "local",
                "coordinator": True,
                "starting": False,
            },
        )

    # --- local-engine extras --------------------------------------------------------------------
    def _list_faults(self) -> None:
        self._json(HTTPStatus.OK, [f.to_json() for f in self.server.engine.faults.list()])

    def _add_fault(self) -> None:
        try:
            fault = Fault.from_json(json.loads(self._request_body or b"{}"))
        except (ValueError, TypeError) as error:
            self._error(HTTPStatus.BAD_REQUEST, f"Invalid fault: {error}")
            return
        self._json(HTTPStatus.CREATED, self.server.engine.faults.add(fault).to_json())

    def _clear_faults(self) -> None:
        self.server.engine.faults.clear()
        self._no_content()

    def _engine_stats(self) -> None:
        engine = self.server.engine
        states = [q.state for q in engine.queries()]
        self._json(
            HTTPStatus.OK,
            {
                "running": engine.running,
                "peak_running": engine.peak_running,
                "peak_running_by_source": engine.peak_running_by_source,
                "queries": len(states),
                "active": sum(1 for s in states if not s.done),
                "failed": sum(1 for s in states if s == QueryState.FAILED),
            },
        )

    # --- plumbing -------------------------------------------------------------------------------
    def _base_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.server.address}"

    def _read_body(self) -> bytes | None:
        """The request's body; None once the request was refused (the connection then closes).
        A body that is not exactly as long as Content-Length says is never acted on: it may be a
        statement cut short (`DELETE ... WHERE` without its WHERE) or carry something else after
        it."""
        if self.headers.get("Transfer-Encoding") is not None:
            self._refuse(
                HTTPStatus.LENGTH_REQUIRED,
                "Transfer-Encoding is not supported: send Content-Length",
            )
            return None
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            if self.command == "POST":
                self._refuse(HTTPStatus.LENGTH_REQUIRED, "A POST needs a Content-Length header")
                return None
            return b""
        if len(lengths) > 1 or not re.fullmatch(r"[0-9]{1,18}", lengths[0].strip()):
            self._refuse(HTTPStatus.BAD_REQUEST, f"Invalid Content-Length: {', '.join(lengths)}")
            return None
        length = int(lengths[0])
        if length > MAX_BODY_BYTES:
            self._refuse(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"Request body of {length} bytes exceeds what a statement may be (query "
                f"text of at most {MAX_QUERY_LENGTH} characters)",
            )
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._refuse(
                HTTPStatus.REQUEST_TIMEOUT, f"Request body not received within {self.timeout}s"
            )
            return None
        if len(body) < length:
            self._refuse(
                HTTPStatus.BAD_REQUEST,
                f"Request body ended after {len(body)} of its {length} bytes (Content-Length)",
            )
            return None
        if self.command == "POST" and self._input_waiting():
            self._refuse(HTTPStatus.BAD_REQUEST, "Request body is longer than its Content-Length")
            return None
        return body

    def _input_waiting(self) -> bool:
        """Whether bytes have already arrived after the request. Trino clients never pipeline:
        nothing follows a POST until its answer is read, so what does is the rest of an over-long
        body."""
        # StreamRequestHandler's rfile is buffered (rbufsize -1), so it can peek
        assert isinstance(self.rfile, io.BufferedReader)
        self.connection.settimeout(0)  # non-blocking: only what is already here
        try:
            return bool(self.rfile.peek(1))
        except OSError:
            return False
        finally:
            self.connection.settimeout(self.timeout)

    def _refuse(self, status: HTTPStatus, message: str) -> None:
        # what follows on the connection cannot be told apart from the body
        self.close_connection = True
        self._error(status, message)

    def _json(self, status: HTTPStatus, document: object) -> None:
        self._send(status, json.dumps(document, separators=(",", ":")).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, values in (self._query_headers or {}).items():
            for value in values:
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _no_content(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, status: HTTPStatus, message: str, name: str | None = None) -> None:
        error = TrinoError(
            name or _ERROR_NAMES.get(status, "GENERIC_USER_ERROR"), message
        ).to_json()
        self._json(status, {"error": error, "message": message})

    def _drop_connection(self) -> None:
        # Close without answering: the client sees a dropped connection mid-statement.
        self.close_connection = True
        with contextlib.suppress(OSError):  # the client may have closed it already
            self.connection.shutdown(socket.SHUT_RDWR)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


# The Trino error an HTTP error answer names when its handler gives none.
_ERROR_NAMES = {
    HTTPStatus.NOT_FOUND: "NOT_FOUND",
    HTTPStatus.GONE: "NOT_FOUND",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "QUERY_TEXT_TOO_LARGE",
    HTTPStatus.NOT_IMPLEMENTED: "NOT_SUPPORTED",
    HTTPStatus.INTERNAL_SERVER_ERROR: "GENERIC_INTERNAL_ERROR",
}


def _header_items(value: str) -> list[str]:
    return [item for item in value.split(",") if item.strip()]


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    server_address: tuple[str, int]  # bound to an IPv4 host: getsockname() gives (text, port)
    engine: Engine
    address: str
    read_timeout: float


class LocalTrinoServer:
    """The engine served over HTTP on a background thread; port 0 picks a free port."""

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 0,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ):
        self.engine = engine
        self._http = _HttpServer((host, port), _Handler)
        self._http.engine = engine
        self._http.read_timeout = read_timeout
        self.host, self.port = self._http.server_address[:2]
        self._http.address = f"{self.host}:{self.port}"
        engine.http_uri = f"http://{self._http.address}"  # system.runtime.nodes
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LocalTrinoServer:
        self._thread = threading.Thread(
            target=self._http.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="local-trino-http",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
