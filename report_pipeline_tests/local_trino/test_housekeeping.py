"""What a coordinator does on its own: abandon unpolled statements, expire old ones."""

from __future__ import annotations

import requests

from report_pipeline.local_trino import EngineConfig, Fault, LocalTrino
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.local_trino import engine_query, error_name

HEADERS = {"X-Trino-User": "tester", "X-Trino-Catalog": "lake", "X-Trino-Schema": "analytics"}


def test_statement_nobody_polls_is_abandoned() -> None:
    config = EngineConfig(client_timeout_seconds=0.5)
    with LocalTrino(sample_events=0, config=config, fault_injection=True) as engine:
        engine.inject(Fault(pattern="forgotten", action="stall", seconds=30))
        first = requests.post(
            f"{engine.url}/v1/statement", data="SELECT 'forgotten'", headers=HEADERS, timeout=10
        ).json()
        query = engine_query(engine, first["id"])
        wait_until(lambda: query.state.done, timeout=5)
        assert error_name(query) == "ABANDONED_QUERY"


def test_finished_query_expires_from_history_and_lookup_says_gone() -> None:
    with LocalTrino(sample_events=0, config=EngineConfig(expire_after_seconds=0.3)) as engine:
        document = requests.post(
            f"{engine.url}/v1/statement", data="SELECT 1", headers=HEADERS, timeout=10
        ).json()
        query_id = document["id"]
        while "nextUri" in document:
            document = requests.get(document["nextUri"], timeout=10).json()
        wait_until(lambda: engine.engine.get(query_id) is None, timeout=5)
        assert requests.get(f"{engine.url}/v1/query/{query_id}", timeout=10).status_code == 410


def test_stopping_the_engine_fails_running_statements() -> None:
    engine = LocalTrino(sample_events=0, fault_injection=True).start()
    engine.inject(Fault(pattern="interrupted_by_shutdown", action="stall", seconds=30))
    document = requests.post(
        f"{engine.url}/v1/statement",
        data="SELECT 'interrupted_by_shutdown'",
        headers=HEADERS,
        timeout=10,
    ).json()
    query = engine_query(engine, document["id"])
    wait_until(lambda: query.state.value == "RUNNING")
    engine.stop()
    assert error_name(query) == "SERVER_SHUTTING_DOWN"


def test_expired_query_polls_are_not_found() -> None:
    with LocalTrino(sample_events=0, config=EngineConfig(expire_after_seconds=0.3)) as engine:
        document = requests.post(
            f"{engine.url}/v1/statement", data="SELECT 1", headers=HEADERS, timeout=10
        ).json()
        query_id = document["id"]
        while "nextUri" in document:
            last_uri = document["nextUri"]
            document = requests.get(last_uri, timeout=10).json()
        wait_until(lambda: engine.engine.get(query_id) is None, timeout=5)
        # as Trino, on the statement path
        assert requests.get(last_uri, timeout=10).status_code == 404
