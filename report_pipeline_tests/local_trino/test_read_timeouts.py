"""A client that goes silent mid-request loses its connection after the read timeout."""

from __future__ import annotations

import trino

from report_pipeline.local_trino.server import LocalTrinoServer
from report_pipeline_tests.local_trino.conftest import SHORT_TIMEOUT
from report_pipeline_tests.local_trino.raw_http import connect, seconds_until_closed


def test_half_a_request_line_is_dropped_at_the_read_timeout(
    short_timeout_server: LocalTrinoServer,
) -> None:
    with connect(short_timeout_server.port) as sock:
        sock.sendall(b"GET /v1/in")
        elapsed, received = seconds_until_closed(sock)
    assert received == b""
    assert SHORT_TIMEOUT * 0.8 <= elapsed < SHORT_TIMEOUT + 4


def test_headers_without_their_end_are_dropped_at_the_read_timeout(
    short_timeout_server: LocalTrinoServer,
) -> None:
    with connect(short_timeout_server.port) as sock:
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trino-User: idle\r\n")
        elapsed, received = seconds_until_closed(sock)
    assert received == b""
    assert SHORT_TIMEOUT * 0.8 <= elapsed < SHORT_TIMEOUT + 4


def test_idle_keep_alive_connection_is_closed_after_the_read_timeout(
    short_timeout_server: LocalTrinoServer,
) -> None:
    with connect(short_timeout_server.port) as sock:
        sock.sendall(b"GET /v1/info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        elapsed, received = seconds_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200 ")  # answered, then closed once nothing more came
    assert SHORT_TIMEOUT * 0.8 <= elapsed < SHORT_TIMEOUT + 4


def test_client_polling_over_keep_alive_is_unaffected_by_a_short_timeout(
    short_timeout_server: LocalTrinoServer,
) -> None:
    with trino.dbapi.connect(
        host=short_timeout_server.host,
        port=short_timeout_server.port,
        user="tester",
        catalog="lake",
        schema="analytics",
    ) as connection:
        cursor = connection.cursor()
        # several pages, polled on one connection
        cursor.execute("SELECT sequential_number AS n FROM TABLE(sequence(0, 99999))")
        assert [row[0] for row in cursor.fetchall()] == list(range(100000))
