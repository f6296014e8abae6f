"""The fault proxy in front of each backend: faults as the local engine has them, for any Trino."""

from __future__ import annotations

import time

import pytest
import requests

from report_pipeline.fault_proxy import FaultProxy
from report_pipeline.local_trino import Fault
from report_pipeline.saga import PermanentStepError, TransientStepError
from report_pipeline.trino.client import TrinoClient, TrinoSettings
from report_pipeline.trino.sql import Statement
from report_pipeline_tests.conftest import run_in_thread

MARK = "proxy_test_marker"


@pytest.fixture
def client(backend) -> TrinoClient:
    return TrinoClient(
        TrinoSettings(
            host=backend.proxy.host,
            port=backend.proxy.port,
            user="proxy-tests",
            catalog="lake",
            source="proxy-tests",
            request_timeout_seconds=10,
        )
    )


def statement(tag: str) -> Statement:
    return Statement(f"SELECT count(*) AS {MARK}_{tag} FROM events", [])


def reached_server(backend, tag: str) -> bool:
    """Did a statement with this tag reach the server? (Its id on the server, from the proxy's
    log.)"""
    return any(
        s.query_id and not s.query_id.endswith("_proxy")
        for s in backend.statements("proxy-tests")
        if f"{MARK}_{tag}" in s.sql
    )


def test_statements_pass_through_to_the_upstream(backend, client) -> None:
    outcome = client.execute(
        Statement("SELECT count(*) FROM events WHERE event_type = ?", ["purchase"])
    )
    assert outcome.rows[0][0] > 0
    assert outcome.info_uri.startswith(backend.proxy.url)  # URLs point back at the proxy
    assert client.query_info(outcome.query_id)["state"] == "FINISHED"


def test_an_error_fault_fails_the_statement_before_the_server_sees_it(backend, client) -> None:
    backend.inject(
        Fault(
            pattern=f"{MARK}_error",
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            message="metastore down (injected)",
        )
    )
    with pytest.raises(TransientStepError, match="metastore down") as failure:
        client.execute(statement("error"))
    assert failure.value.error_name == "HIVE_METASTORE_ERROR"
    assert not reached_server(backend, "error")


def test_an_error_fault_applies_to_the_next_n_matching_statements(backend, client) -> None:
    backend.inject(
        Fault(pattern=f"{MARK}_twice", action="error", error_name="PERMISSION_DENIED", times=2)
    )
    for _ in range(2):
        with pytest.raises(PermanentStepError, match="PERMISSION_DENIED"):
            client.execute(statement("twice"))
    assert client.execute(statement("twice")).rows[0][0] > 0
    assert backend.proxy.faults.list() == []


def test_a_stall_holds_the_statement_queued_then_runs_it(backend, client) -> None:
    backend.inject(Fault(pattern=f"{MARK}_stall", action="stall", seconds=2))
    states = []
    started = time.monotonic()
    outcome = client.execute(statement("stall"), on_progress=lambda p: states.append(p.state))
    assert time.monotonic() - started >= 2
    assert outcome.rows[0][0] > 0 and "QUEUED" in states
    assert reached_server(backend, "stall")


def test_a_stall_cancelled_meanwhile_never_reaches_the_server(backend, client) -> None:
    backend.inject(Fault(pattern=f"{MARK}_cancelled", action="stall", seconds=30))
    thread, outcome = run_in_thread(
        lambda: client.execute(statement("cancelled"), timeout_seconds=1)
    )
    thread.join(15)
    # cancelled in the proxy, synchronously
    assert type(outcome.get("error")).__name__ == "StepTimedOut"
    assert not reached_server(backend, "cancelled")


def test_a_drop_runs_the_statement_and_the_client_learns_its_outcome_by_lookup(
    backend, client
) -> None:
    backend.inject(Fault(pattern=f"{MARK}_ctas", action="drop"))
    table = f"scratch.{MARK}_table"
    client.execute(Statement(f"DROP TABLE IF EXISTS {table}", []))
    outcome = client.execute(Statement(f"CREATE TABLE {table} AS SELECT 1 AS {MARK}_ctas", []))
    assert outcome.update_type == "CREATE TABLE"
    assert client.execute(Statement(f"SELECT * FROM {table}", [])).rows == [[1]]
    submitted = [s for s in backend.statements("proxy-tests") if f"{MARK}_ctas" in s.sql]
    assert len(submitted) == 1 and submitted[0].fault == "drop"  # looked up, never re-sent
    client.execute(Statement(f"DROP TABLE {table}", []))


def test_the_fault_api_over_http_matches_the_local_engines(backend) -> None:
    url = f"{backend.proxy.url}/v1/local/faults"
    created = requests.post(
        url, json={"pattern": "x", "action": "stall", "seconds": 1, "times": 3}, timeout=5
    )
    assert created.status_code == 201 and created.json()["times"] == 3
    assert [f["pattern"] for f in requests.get(url, timeout=5).json()] == ["x"]
    refused = requests.post(url, json={"pattern": "x", "action": "explode"}, timeout=5)
    assert refused.status_code == 400 and "unknown fault action" in refused.text
    assert requests.delete(url, timeout=5).status_code == 204
    assert requests.get(url, timeout=5).json() == []


def test_an_upstream_that_is_down_looks_like_a_lost_connection() -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy:
        client = TrinoClient(
            TrinoSettings(host=proxy.host, port=proxy.port, request_timeout_seconds=2)
        )
        with pytest.raises(TransientStepError) as failure:
            client.execute(Statement("SELECT 1", []))
    assert failure.value.error_name == "CONNECTION_LOST"


def test_the_upstream_can_be_switched_while_the_proxy_runs(local_trino, real_trino) -> None:
    with FaultProxy(local_trino.url) as proxy:
        client = TrinoClient(TrinoSettings(host=proxy.host, port=proxy.port))
        versions = []
        for upstream in (local_trino.url, real_trino.url):
            proxy.upstream_url = upstream
            versions.append(client.execute(Statement("SELECT version()", [])).rows[0][0])
    assert versions[1] == real_trino.installation.version and versions[0] != versions[1]
