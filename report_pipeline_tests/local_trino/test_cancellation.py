"""Cancelling, killing, timing out and looking up statements, also after their client is gone."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest
import requests
import trino

from report_pipeline.local_trino import LocalTrino
from report_pipeline.local_trino.errors import TrinoError
from report_pipeline.local_trino.query import Query, QueryState, Session
from report_pipeline_tests.conftest import run_in_thread, wait_until
from report_pipeline_tests.local_trino import (
    ENDLESS_QUERY,
    cancel_would_land,
    engine_query,
    error_name,
)

# The endless statement only ends if the engine interrupts DuckDB; the bound is generous because a
# loaded machine (the suite runs a JVM beside it) can take seconds to schedule the interrupt.
STOPPED_WITHIN = 15


def start_endless(
    cursor: trino.dbapi.Cursor, local_trino: LocalTrino, sql: str = ENDLESS_QUERY
) -> tuple[threading.Thread, dict, Query]:
    """Start a statement that only ends when stopped; return its thread, outcome and engine
    query."""
    thread, outcome = run_in_thread(lambda: cursor.execute(sql) and cursor.fetchall())
    wait_until(lambda: cancel_would_land(cursor))
    query = engine_query(local_trino, cursor.query_id)
    wait_until(lambda: query.state.value == "RUNNING")
    return thread, outcome, query


def test_cancel_from_another_thread_stops_the_duckdb_statement(local_trino, cursor) -> None:
    thread, _, query = start_endless(cursor, local_trino)
    cursor.cancel()
    assert query.stopped.wait(STOPPED_WITHIN), "DuckDB kept executing the cancelled statement"
    thread.join(STOPPED_WITHIN)
    assert error_name(query) == "USER_CANCELED"


def test_a_cancel_landing_before_duckdb_starts_the_statement_still_stops_it() -> None:
    """DuckDB forgets an interrupt that arrives before its statement runs; the cancel must not."""
    query = Query("q1", "slug", ENDLESS_QUERY, Session(user="probe"))
    duck = duckdb.connect()
    query.begin(QueryState.RUNNING)
    query.attach(duck)
    query.fail(TrinoError("USER_CANCELED", "Query was canceled"))  # before DuckDB executes
    thread, outcome = run_in_thread(
        lambda: duck.execute("SELECT sum(i * j) FROM range(100000) a(i), range(100000) b(j)")
    )
    thread.join(STOPPED_WITHIN)
    query.stopped.set()
    assert not thread.is_alive(), "DuckDB kept executing the cancelled statement"
    assert isinstance(outcome.get("error"), duckdb.InterruptException)


def test_cancelled_query_can_be_looked_up_after_its_client_is_gone(local_trino, connect) -> None:
    connection = connect()
    cursor = connection.cursor()
    _, _, query = start_endless(cursor, local_trino)
    cursor.cancel()
    connection.close()
    info = requests.get(f"{local_trino.url}/v1/query/{query.id}", timeout=10).json()
    assert info["state"] == "FAILED"
    assert info["errorCode"]["name"] == "USER_CANCELED"


def test_finished_query_can_be_looked_up_by_id(local_trino, connect) -> None:
    connection = connect()
    cursor = connection.cursor()
    cursor.execute("CREATE TABLE scratch.lookup_probe AS SELECT 1 AS x")
    cursor.fetchall()
    query_id = cursor.query_id
    connection.close()
    try:
        info = requests.get(f"{local_trino.url}/v1/query/{query_id}", timeout=10).json()
        assert info["state"] == "FINISHED"
        assert info["updateType"] == "CREATE TABLE"
    finally:
        connect().cursor().execute("DROP TABLE scratch.lookup_probe")


def test_recent_queries_are_listed_in_system_runtime_queries(local_trino, cursor) -> None:
    cursor.execute("SELECT 'runtime probe'")
    cursor.fetchall()
    probe_id = cursor.query_id
    cursor.execute(
        "SELECT state, query, error_code FROM system.runtime.queries WHERE query_id = ?", [probe_id]
    )
    assert cursor.fetchall() == [["FINISHED", "SELECT 'runtime probe'", None]]


def test_failed_query_shows_its_error_in_system_runtime_queries(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError):
        cursor.execute("SELECT * FROM runtime_missing_table")
    failed_id = cursor.query_id
    cursor.execute(
        "SELECT state, error_type, error_code FROM system.runtime.queries WHERE query_id = ?",
        [failed_id],
    )
    assert cursor.fetchall() == [["FAILED", "USER_ERROR", "TABLE_NOT_FOUND"]]


def test_unknown_query_lookup_is_gone(local_trino) -> None:
    response = requests.get(f"{local_trino.url}/v1/query/20260101_000000_99999_zzzzz", timeout=10)
    assert response.status_code == 410  # as Trino 476 answers for a query it does not know
    assert response.json()["error"]["errorName"] == "NOT_FOUND"


def test_delete_by_query_id_cancels_the_statement(local_trino, cursor) -> None:
    thread, outcome, query = start_endless(cursor, local_trino)
    response = requests.delete(f"{local_trino.url}/v1/query/{query.id}", timeout=10)
    assert response.status_code == 204
    thread.join(STOPPED_WITHIN)
    assert isinstance(outcome["error"], trino.exceptions.TrinoUserError)
    assert outcome["error"].error_name == "USER_CANCELED"
    assert query.stopped.wait(STOPPED_WITHIN)


def test_kill_query_fails_the_target_with_the_message(local_trino, connect) -> None:
    victim = connect().cursor()
    thread, outcome, query = start_endless(victim, local_trino)
    admin = connect().cursor()
    admin.execute(
        "CALL system.runtime.kill_query(query_id => ?, message => ?)", [query.id, "runaway report"]
    )
    assert admin.fetchall() == []  # Trino answers CALL with no columns
    thread.join(STOPPED_WITHIN)
    error = outcome["error"]
    assert error.error_name == "ADMINISTRATIVELY_KILLED"
    assert error.message == "Query killed. Message: runaway report"
    assert query.stopped.wait(STOPPED_WITHIN)


def test_kill_of_an_unknown_query_is_not_found(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(
            "CALL system.runtime.kill_query("
            "query_id => '20260101_000000_99999_zzzzz', message => 'x')"
        )
    assert raised.value.error_name == "NOT_FOUND"


def test_query_max_run_time_fails_a_long_statement(connect) -> None:
    cursor = connect(session_properties={"query_max_run_time": "1s"}).cursor()
    started = time.monotonic()
    with pytest.raises(trino.exceptions.TrinoQueryError) as raised:
        cursor.execute(ENDLESS_QUERY)
        cursor.fetchall()
    assert raised.value.error_name == "EXCEEDED_TIME_LIMIT"
    assert raised.value.error_type == "INSUFFICIENT_RESOURCES"
    assert time.monotonic() - started < STOPPED_WITHIN  # (the statement itself never ends)


@pytest.fixture
def progress_input(connect):
    """Two million rows to scan; dropped afterwards."""
    setup = connect().cursor()
    setup.execute(
        "CREATE TABLE scratch.progress_input AS "
        "SELECT sequential_number AS x FROM TABLE(sequence(0, 1999999))"
    )
    setup.fetchall()
    yield "scratch.progress_input"
    setup.execute("DROP TABLE scratch.progress_input")
    setup.fetchall()


def test_progress_stats_advance_while_a_statement_runs(
    local_trino, connect, progress_input
) -> None:
    seen: list[dict] = []
    cursor = connect().cursor(stats_callback=seen.append)
    # runs for minutes unless cancelled: the test awaits progress instead of racing the statement's
    # end
    thread, outcome = run_in_thread(
        lambda: (
            cursor.execute(
                f"SELECT sum((p.x * r.sequential_number) % 7) FROM {progress_input} p "
                "CROSS JOIN TABLE(sequence(1, 100000)) r"
            )
            and cursor.fetchall()
        )
    )

    def running() -> list[dict]:
        return [
            s for s in list(seen) if s["state"] == "RUNNING" and s.get("progressPercentage", 0) > 0
        ]

    wait_until(lambda: len({s["progressPercentage"] for s in running()}) >= 2, timeout=60)
    cursor.cancel()
    thread.join(STOPPED_WITHIN)
    assert outcome["error"].error_name == "USER_CANCELED"
    advancing = running()
    assert all(0 < s["progressPercentage"] < 100 and s["processedRows"] > 0 for s in advancing)
    percentages = [s["progressPercentage"] for s in advancing]
    assert percentages == sorted(percentages) and percentages[0] < percentages[-1]
    assert [s["elapsedTimeMillis"] for s in seen] == sorted(s["elapsedTimeMillis"] for s in seen)


def test_final_stats_count_every_input_row_at_full_progress(connect, progress_input) -> None:
    seen: list[dict] = []
    cursor = connect().cursor(stats_callback=seen.append)
    cursor.execute(f"SELECT count(*) FROM {progress_input}")
    assert cursor.fetchall() == [[2000000]]
    assert (seen[-1]["state"], seen[-1]["progressPercentage"], seen[-1]["processedRows"]) == (
        "FINISHED",
        100,
        2000000,
    )
