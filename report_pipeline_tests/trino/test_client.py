"""The Trino client wrapper against the local engine: outcomes, progress, time limits, error
classes."""

from __future__ import annotations

import time

import pytest
import trino.exceptions

from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.saga import PermanentStepError, StepCancelled, StepTimedOut, TransientStepError
from report_pipeline.trino.client import QueryProgress, TrinoClient, TrinoSettings
from report_pipeline.trino.errors import classify
from report_pipeline.trino.sql import Statement
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.local_trino import ENDLESS_QUERY


@pytest.fixture
def client(local_trino: LocalTrino) -> TrinoClient:
    return TrinoClient(
        TrinoSettings(
            host=local_trino.host,
            port=local_trino.port,
            user="client-tests",
            catalog=local_trino.catalog,
        )
    )


def test_query_outcome_has_rows_columns_and_query_id(client) -> None:
    outcome = client.execute(
        Statement("SELECT country, count(*) AS n FROM users WHERE country = ? GROUP BY 1", ["DE"])
    )
    assert outcome.columns == ["country", "n"]
    assert outcome.rows[0][0] == "DE" and outcome.row_count == 1
    assert outcome.query_id and outcome.info_uri.endswith(outcome.query_id)


def test_dml_outcome_counts_rows_written_and_ddl_none(client) -> None:
    created = client.execute(
        Statement("CREATE TABLE scratch.client_probe AS SELECT * FROM users WHERE id < 10", [])
    )
    dropped = client.execute(Statement("DROP TABLE scratch.client_probe", []))
    assert (created.update_type, created.row_count) == ("CREATE TABLE", 10)
    assert (dropped.update_type, dropped.row_count) == ("DROP TABLE", None)


def test_progress_is_reported_while_the_statement_runs(client, local_trino) -> None:
    local_trino.inject(Fault(pattern="progress_probe", action="stall", seconds=2.5))
    seen: list[QueryProgress] = []
    client.execute(Statement("SELECT 'progress_probe'", []), on_progress=seen.append)
    states = [p.state for p in seen]
    assert "RUNNING" in states and states[-1] == "FINISHED"
    assert all(p.query_id == seen[0].query_id for p in seen)
    assert seen[-1].elapsed_seconds >= 2.5


def test_time_limit_cancels_the_query_and_raises_timed_out(client, local_trino) -> None:
    started = time.monotonic()
    with pytest.raises(StepTimedOut) as raised:
        client.execute(Statement(ENDLESS_QUERY, []), timeout_seconds=1)
    assert time.monotonic() - started < 4
    query = local_trino.engine.get(raised.value.query_id)
    wait_until(lambda: query.stopped.is_set(), timeout=2)
    assert query.state.value == "FAILED"


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (dict(error_name="HIVE_METASTORE_ERROR", error_type="EXTERNAL"), TransientStepError),
        (dict(error_name="EXCEEDED_GLOBAL_MEMORY_LIMIT"), TransientStepError),
        (dict(error_name="REMOTE_TASK_ERROR", error_type="INTERNAL_ERROR"), TransientStepError),
        (dict(error_name="GENERIC_INTERNAL_ERROR"), PermanentStepError),
        (dict(error_name="TABLE_NOT_FOUND"), PermanentStepError),
        (dict(error_name="ADMINISTRATIVELY_KILLED"), StepCancelled),
    ],
)
def test_failures_are_classified_by_trino_error_type(client, local_trino, fault, expected) -> None:
    local_trino.inject(Fault(pattern="classify_probe", action="error", **fault))
    with pytest.raises(expected) as raised:
        client.execute(Statement("SELECT 'classify_probe'", []))
    assert raised.value.error_name == fault["error_name"]
    assert raised.value.query_id


@pytest.mark.parametrize(
    "error",
    [
        trino.exceptions.Http502Error("bad gateway"),
        trino.exceptions.Http503Error("unavailable"),
        trino.exceptions.Http504Error("gateway timeout"),
        trino.exceptions.TrinoConnectionError("reset"),
    ],
)
def test_http_5xx_and_lost_connections_are_transient(error) -> None:
    assert isinstance(classify(error), TransientStepError)


def test_unreachable_server_is_transient() -> None:
    client = TrinoClient(TrinoSettings(host="127.0.0.1", port=9, request_timeout_seconds=2))
    with pytest.raises(TransientStepError):
        client.execute(Statement("SELECT 1", []))


def test_write_whose_connection_drops_is_looked_up_not_resubmitted(client, local_trino) -> None:
    local_trino.inject(Fault(pattern="lost_write_probe", action="drop"))
    try:
        outcome = client.execute(
            Statement("CREATE TABLE scratch.lost_write_probe AS SELECT 1 AS x", [])
        )
        assert outcome.update_type == "CREATE TABLE"
        submitted = [q for q in local_trino.engine.queries() if "lost_write_probe" in q.sql]
        assert len(submitted) == 1 and submitted[0].id == outcome.query_id
    finally:
        client.execute(Statement("DROP TABLE IF EXISTS scratch.lost_write_probe", []))


def test_failed_write_whose_connection_drops_reports_its_own_error(client, local_trino) -> None:
    local_trino.inject(Fault(pattern="lost_failing_probe", action="drop"))
    with pytest.raises(PermanentStepError) as raised:
        client.execute(Statement("INSERT INTO no_such_table SELECT 'lost_failing_probe'", []))
    assert raised.value.error_name == "TABLE_NOT_FOUND"


def test_read_whose_connection_drops_is_transient(client, local_trino) -> None:
    local_trino.inject(Fault(pattern="lost_read_probe", action="drop"))
    with pytest.raises(TransientStepError) as raised:
        client.execute(Statement("SELECT 'lost_read_probe'", []))
    assert raised.value.error_name == "CONNECTION_LOST"
