"""Every HTTP error the engine answers is a Trino-style JSON error, never the stdlib's HTML page."""

from __future__ import annotations

import pytest

from report_pipeline.local_trino import LocalTrino
from report_pipeline_tests.local_trino.raw_http import exchange

# Just over the stdlib's 65,536-byte limit on a request or header line, so that little is left
# unread.
OVER_LINE_LIMIT = 65_600

MALFORMED = {
    "garbage request line": (b"GARBAGE\r\n\r\n", 400),
    "HTTP/0.9 request": (b"GET /v1/info\r\n\r\n", 400),
    "bad protocol version": (b"GET /v1/info HTTP/x.y\r\nHost: 127.0.0.1\r\n\r\n", 400),
    "request line too long": (
        b"GET /" + b"a" * OVER_LINE_LIMIT + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        414,
    ),
    "header too large": (
        b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        + b"a" * OVER_LINE_LIMIT
        + b"\r\n\r\n",
        431,
    ),
    "unknown method PATCH": (
        b"PATCH /v1/statement HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        501,
    ),
    "unknown method PUT": (
        b"PUT /v1/statement HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
        501,
    ),
    "unknown path": (
        b"GET /v1/nothing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        404,
    ),
    "method not allowed on the path": (
        b"GET /v1/statement HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        405,
    ),
}


@pytest.mark.parametrize(("request_bytes", "status"), MALFORMED.values(), ids=MALFORMED.keys())
def test_http_error_is_a_trino_json_error(
    local_trino: LocalTrino, request_bytes: bytes, status: int
) -> None:
    answer = exchange(local_trino.port, request_bytes)
    assert answer.status == status
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.json()
    assert set(document) == {"error", "message"}
    assert {"message", "errorCode", "errorName", "errorType", "failureInfo"} <= set(
        document["error"]
    )
    assert document["error"]["message"] == document["message"]
    assert b"<" not in answer.raw  # no HTML anywhere, headers included


def test_malformed_request_closes_the_connection(local_trino: LocalTrino) -> None:
    # exchange() reads until the server closes: it returns at all only because the server did
    answer = exchange(local_trino.port, b"GARBAGE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert answer.status == 501
    assert answer.headers["Connection"] == "close"
