"""A statement is executed only when its request body is exactly what its Content-Length
announced."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
import trino

from report_pipeline.local_trino import LocalTrino
from report_pipeline.local_trino.server import MAX_BODY_BYTES, MAX_QUERY_LENGTH, LocalTrinoServer
from report_pipeline_tests.conftest import Connect
from report_pipeline_tests.local_trino.conftest import SHORT_TIMEOUT
from report_pipeline_tests.local_trino.raw_http import (
    connect as raw_connect,
)
from report_pipeline_tests.local_trino.raw_http import (
    exchange,
    parse,
    post_statement,
    seconds_until_closed,
)


@pytest.fixture
def scratch_table(connect: Connect) -> Iterator[str]:
    """`lake.scratch.<name>` holding x = 1 and x = 2, dropped afterwards."""
    name = f"body_probe_{secrets.token_hex(4)}"
    cursor = connect().cursor()
    cursor.execute(
        f"CREATE TABLE lake.scratch.{name} AS "
        "SELECT sequential_number AS x FROM TABLE(sequence(1, 2))"
    )
    cursor.fetchall()
    yield name
    cursor.execute(f"DROP TABLE IF EXISTS lake.scratch.{name}")
    cursor.fetchall()


def table_rows(connect: Connect, table: str) -> list[list]:
    cursor = connect().cursor()
    cursor.execute(f"SELECT x FROM lake.scratch.{table} ORDER BY x")
    return cursor.fetchall()


def submitted(engine: LocalTrino, prefix: str) -> list[str]:
    """The statements the engine was given that start with `prefix`."""
    return [q.sql for q in engine.engine.queries() if q.sql.startswith(prefix)]


def test_body_cut_short_by_a_closing_client_is_refused_and_not_executed(
    local_trino, connect, scratch_table
) -> None:
    sql = f"DELETE FROM {scratch_table} WHERE x = 1"
    cut = sql[: sql.index(" WHERE")].encode()  # what executed alone would delete every row
    answer = exchange(
        local_trino.port, post_statement(cut, content_length=len(sql)), close_write=True
    )
    assert answer.status == 400
    assert "ended after" in answer.json()["message"]
    assert submitted(local_trino, f"DELETE FROM {scratch_table}") == []
    assert table_rows(connect, scratch_table) == [[1], [2]]


def test_body_cut_short_by_an_idle_client_is_dropped_at_the_read_timeout_and_not_executed(
    local_trino, short_timeout_server: LocalTrinoServer, connect, scratch_table
) -> None:
    sql = f"DELETE FROM {scratch_table} WHERE x = 1"
    cut = sql[: sql.index(" WHERE")].encode()
    with raw_connect(short_timeout_server.port) as sock:
        sock.sendall(post_statement(cut, content_length=len(sql)))
        elapsed, received = seconds_until_closed(sock)
    assert SHORT_TIMEOUT * 0.8 <= elapsed < SHORT_TIMEOUT + 4
    assert parse(received).status == 408
    assert submitted(local_trino, f"DELETE FROM {scratch_table}") == []
    assert table_rows(connect, scratch_table) == [[1], [2]]


def test_body_longer_than_its_content_length_is_refused_and_not_executed(
    local_trino, connect, scratch_table
) -> None:
    sql = f"DELETE FROM {scratch_table} WHERE x = 1".encode()
    answer = exchange(local_trino.port, post_statement(sql + b" OR true", content_length=len(sql)))
    assert answer.status == 400
    assert "longer than its Content-Length" in answer.json()["message"]
    assert answer.headers["Connection"] == "close"
    assert submitted(local_trino, f"DELETE FROM {scratch_table}") == []
    assert table_rows(connect, scratch_table) == [[1], [2]]


def test_chunked_body_is_refused_with_411_and_not_executed(local_trino) -> None:
    marker = f"chunked_{secrets.token_hex(4)}"
    sql = f"SELECT '{marker}'".encode()
    chunked = f"{len(sql):x}\r\n".encode() + sql + b"\r\n0\r\n\r\n"
    answer = exchange(
        local_trino.port, post_statement(chunked, None, "Transfer-Encoding: chunked\r\n")
    )
    assert answer.status == 411
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["errorType"] == "USER_ERROR"
    assert submitted(local_trino, f"SELECT '{marker}'") == []


def test_post_without_content_length_is_refused_with_411_and_not_executed(local_trino) -> None:
    marker = f"no_length_{secrets.token_hex(4)}"
    answer = exchange(
        local_trino.port, post_statement(f"SELECT '{marker}'".encode(), None), close_write=True
    )
    assert answer.status == 411
    assert answer.json()["error"]["errorType"] == "USER_ERROR"
    assert submitted(local_trino, f"SELECT '{marker}'") == []


def test_sql_of_the_maximum_length_runs(cursor) -> None:
    sql = "SELECT 1"
    cursor.execute(sql + " " * (MAX_QUERY_LENGTH - len(sql)))
    assert cursor.fetchall() == [[1]]


def test_sql_just_over_the_maximum_length_fails_with_query_text_too_large(cursor) -> None:
    sql = "SELECT 1 " + " " * MAX_QUERY_LENGTH
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(sql)
        cursor.fetchall()
    assert (raised.value.error_name, raised.value.error_code, raised.value.error_type) == (
        "QUERY_TEXT_TOO_LARGE",
        35,
        "USER_ERROR",
    )
    assert (
        raised.value.message
        == f"Query text length ({len(sql)}) exceeds the maximum length ({MAX_QUERY_LENGTH})"
    )


def test_body_far_beyond_the_limit_is_refused_unread_with_413(local_trino) -> None:
    with raw_connect(local_trino.port, timeout=5) as sock:
        # headers only: the answer must come without the server waiting for the announced body
        sock.sendall(post_statement(b"", content_length=MAX_BODY_BYTES + 1))
        _, received = seconds_until_closed(sock)
    answer = parse(received)
    assert answer.status == 413
    assert answer.json()["error"]["errorName"] == "QUERY_TEXT_TOO_LARGE"
    assert answer.headers["Connection"] == "close"
