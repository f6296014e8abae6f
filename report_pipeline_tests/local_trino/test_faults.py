"""Fault injection: each action, its count, and that it is off unless asked for."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
import trino

from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.local_trino import cancel_would_land, engine_query, error_name


def test_no_fault_is_active_by_default(local_trino: LocalTrino) -> None:
    assert requests.get(f"{local_trino.url}/v1/local/faults", timeout=10).json() == []


def test_error_fault_fails_the_next_n_matching_statements_then_retires(local_trino, cursor) -> None:
    local_trino.inject(
        Fault(
            pattern=r"fault_target",
            action="error",
            times=2,
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            message="metastore down",
        )
    )
    for _ in range(2):
        with pytest.raises(trino.exceptions.TrinoExternalError) as raised:
            cursor.execute("SELECT 'fault_target'")
        assert raised.value.message == "metastore down"
    cursor.execute("SELECT 'fault_target'")
    assert cursor.fetchall() == [["fault_target"]]


def test_error_fault_leaves_other_statements_alone(local_trino, cursor) -> None:
    local_trino.inject(Fault(pattern=r"only_this", action="error", error_name="SYNTAX_ERROR"))
    cursor.execute("SELECT 'something else'")
    assert cursor.fetchall() == [["something else"]]


def test_stall_fault_delays_the_statement(local_trino, cursor) -> None:
    local_trino.inject(Fault(pattern=r"stall_target", action="stall", seconds=1.5))
    started = time.monotonic()
    cursor.execute("SELECT 'stall_target'")
    assert cursor.fetchall() == [["stall_target"]]
    assert time.monotonic() - started >= 1.5


def test_stalled_statement_reports_running_and_can_be_cancelled(local_trino, connect) -> None:
    local_trino.inject(Fault(pattern=r"stall_cancel", action="stall", seconds=60))
    cursor = connect().cursor()
    from report_pipeline_tests.conftest import run_in_thread

    thread, _ = run_in_thread(lambda: cursor.execute("SELECT 'stall_cancel'"))
    wait_until(lambda: cancel_would_land(cursor))
    query = engine_query(local_trino, cursor.query_id)
    wait_until(lambda: query.state.value == "RUNNING")
    cursor.cancel()
    assert query.stopped.wait(15)  # well inside the stall: the cancel, not the clock, ended it
    thread.join(15)
    assert error_name(query) == "USER_CANCELED"


def test_a_released_stall_lets_its_statement_run_on(local_trino, connect) -> None:
    stall = local_trino.inject(Fault(pattern=r"stall_release", action="stall", seconds=600))
    cursor = connect().cursor()
    from report_pipeline_tests.conftest import run_in_thread

    thread, outcome = run_in_thread(
        lambda: cursor.execute("SELECT 'stall_release'") and cursor.fetchall()
    )
    wait_until(lambda: cursor.query_id is not None)
    wait_until(lambda: local_trino.engine.get(cursor.query_id).state.value == "RUNNING")
    stall.release()
    thread.join(30)
    assert outcome["result"] == [["stall_release"]]


def test_drop_fault_loses_the_connection_but_the_statement_completes(local_trino, connect) -> None:
    local_trino.inject(Fault(pattern=r"drop_probe", action="drop"))
    cursor = connect(max_attempts=2).cursor()
    with pytest.raises(trino.exceptions.TrinoConnectionError):
        cursor.execute("CREATE TABLE scratch.drop_probe AS SELECT 7 AS x")
        cursor.fetchall()
    query_id = cursor.query_id
    try:
        wait_until(lambda: local_trino.engine.get(query_id).state.done)
        info = requests.get(f"{local_trino.url}/v1/query/{query_id}", timeout=10).json()
        assert info["state"] == "FINISHED"
        check = connect().cursor()
        check.execute("SELECT x FROM scratch.drop_probe")
        assert check.fetchall() == [[7]]
    finally:
        connect().cursor().execute("DROP TABLE IF EXISTS scratch.drop_probe")


def test_faults_are_managed_over_http(local_trino: LocalTrino) -> None:
    url = f"{local_trino.url}/v1/local/faults"
    created = requests.post(
        url,
        json={
            "pattern": "http_fault",
            "action": "error",
            "error_name": "TABLE_NOT_FOUND",
            "times": 3,
        },
        timeout=10,
    )
    assert created.status_code == 201
    assert created.json()["times"] == 3
    assert [f["pattern"] for f in requests.get(url, timeout=10).json()] == ["http_fault"]
    assert requests.delete(url, timeout=10).status_code == 204
    assert requests.get(url, timeout=10).json() == []


@pytest.mark.parametrize(
    "spec",
    [
        {"pattern": "x", "action": "explode"},
        {"pattern": "x", "action": "error", "error_name": "NOT_A_TRINO_ERROR"},
        {"pattern": "x", "action": "stall"},
        {"pattern": "(", "action": "error"},
        {"pattern": "x", "action": "error", "times": 0},
    ],
)
def test_invalid_fault_is_rejected_with_400(local_trino: LocalTrino, spec: dict) -> None:
    response = requests.post(f"{local_trino.url}/v1/local/faults", json=spec, timeout=10)
    assert response.status_code == 400
    assert requests.get(f"{local_trino.url}/v1/local/faults", timeout=10).json() == []


@pytest.fixture(scope="module")
def plain_engine() -> Iterator[LocalTrino]:
    """An engine started without fault injection, as `report-pipeline local-trino` is by default."""
    with LocalTrino(sample_events=0) as engine:
        yield engine


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_plain_engine_answers_the_fault_api_as_an_unknown_resource(
    plain_engine: LocalTrino, method: str
) -> None:
    body = {"pattern": "x", "action": "error"} if method == "POST" else None
    response = requests.request(
        method, f"{plain_engine.url}/v1/local/faults", json=body, timeout=10
    )
    unknown = requests.request(
        method, f"{plain_engine.url}/v1/local/nothing", json=body, timeout=10
    )
    assert response.status_code == unknown.status_code == 404
    assert (
        response.json()["error"]["errorName"] == unknown.json()["error"]["errorName"] == "NOT_FOUND"
    )
    assert plain_engine.engine.faults.list() == []


def test_inject_on_a_plain_engine_is_refused(plain_engine: LocalTrino) -> None:
    with pytest.raises(RuntimeError, match="fault injection is off"):
        plain_engine.inject(Fault(pattern="x", action="error"))
    assert plain_engine.engine.faults.list() == []
