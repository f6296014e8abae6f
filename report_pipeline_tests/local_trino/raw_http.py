"""Raw HTTP over a socket, for requests no well-behaved client would send."""

from __future__ import annotations

import http.client
import io
import json
import socket
import time
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    raw: bytes  # everything the server sent, status line and headers included

    def json(self) -> dict:
        return json.loads(self.body)


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the socket's timeout bounds
    the wait)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def parse(raw: bytes) -> Answer:
    class _Received:
        def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
            return io.BytesIO(raw)

    # HTTPResponse takes a socket but only calls its makefile(): bytes already received will do
    response = http.client.HTTPResponse(_Received())  # type: ignore[arg-type]
    response.begin()
    return Answer(response.status, response.headers, response.read(), raw)


def exchange(
    port: int, request: bytes, *, close_write: bool = False, timeout: float = 10.0
) -> Answer:
    """Send `request` as is (then half-close if asked), and parse what comes back until the server
    closes."""
    with connect(port, timeout) as sock:
        sock.sendall(request)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        return parse(read_until_closed(sock))


def seconds_until_closed(sock: socket.socket) -> tuple[float, bytes]:
    """How long the server took to close the connection, and what it sent meanwhile."""
    started = time.monotonic()
    received = read_until_closed(sock)
    return time.monotonic() - started, received


def post_statement(sql_bytes: bytes, content_length: int | None, extra_headers: str = "") -> bytes:
    """A POST /v1/statement request whose Content-Length need not match its body."""
    length = f"Content-Length: {content_length}\r\n" if content_length is not None else ""
    head = (
        f"POST /v1/statement HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trino-User: tester\r\n"
        f"X-Trino-Catalog: lake\r\nX-Trino-Schema: scratch\r\n{length}{extra_headers}\r\n"
    )
    return head.encode() + sql_bytes
