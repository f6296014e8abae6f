"""The scratch sweeper drops what finished or unknown sagas left behind, and nothing else."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import pytest

from report_pipeline.orchestration.resources import LedgerResource, TrinoResource
from report_pipeline.orchestration.sweeper import sweep_scratch_tables
from report_pipeline.orchestration.sweeper_records import SweeperRecords
from report_pipeline.saga import SagaState
from report_pipeline.saga.scratch_names import scratch_table_name
from report_pipeline_tests.builders import saga_in
from report_pipeline_tests.orchestration.conftest import query


@pytest.fixture
def trino_resource(local_trino) -> TrinoResource:
    return TrinoResource(
        host=local_trino.host,
        port=local_trino.port,
        user="sweeper-tests",
        catalog=local_trino.catalog,
    )


def create(engine, name: str) -> None:
    query(engine, f'CREATE TABLE scratch."{name}" AS SELECT 1 AS x')  # names made by the test


def scratch(engine) -> set[str]:
    return {
        r[0]
        for r in query(
            engine,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'scratch'",
        )
    }


def test_sweeper_drops_finished_and_unknown_sagas_tables_only(
    local_trino, ledger, trino_resource
) -> None:
    finished = saga_in(ledger, SagaState.FAILED_NEEDS_MANUAL)
    running = saga_in(ledger, SagaState.RUNNING)
    unknown_key = uuid.uuid4().hex
    tables = {
        "finished": scratch_table_name(finished, "summary"),
        "running": scratch_table_name(running, "summary"),
        "unknown": f"saga_{unknown_key}_activity",
        "foreign": "analyst_scratch_notes",
    }
    for name in tables.values():
        create(local_trino, name)
    try:
        ours = {f"lake.scratch.{name}" for name in tables.values()}
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        first = sweep_scratch_tables(trino_resource, ledger, min_age_seconds=3600, now=later)
        # the unknown table is only now first seen: it becomes old enough on a later pass
        assert ours.intersection(first) == {f"lake.scratch.{tables['finished']}"}
        second = sweep_scratch_tables(
            trino_resource, ledger, min_age_seconds=3600, now=later + dt.timedelta(hours=2)
        )
        assert ours.intersection(second) == {f"lake.scratch.{tables['unknown']}"}
        remaining = scratch(local_trino)
        assert tables["running"] in remaining and tables["foreign"] in remaining
        assert tables["finished"] not in remaining and tables["unknown"] not in remaining
        records = {r.table_name: r for r in SweeperRecords(ledger.engine).sweeps()}
        assert records[f"lake.scratch.{tables['finished']}"].saga_state == "FAILED_NEEDS_MANUAL"
        assert (
            records[f"lake.scratch.{tables['unknown']}"].reason == "no saga in the ledger owns it"
        )
    finally:
        for name in tables.values():
            query(local_trino, f'DROP TABLE IF EXISTS scratch."{name}"')


def test_sweeper_leaves_young_tables_alone(local_trino, ledger, trino_resource) -> None:
    finished = saga_in(ledger, SagaState.COMPENSATED)
    name = scratch_table_name(finished, "summary")
    create(local_trino, name)
    try:
        assert sweep_scratch_tables(trino_resource, ledger, min_age_seconds=3600) == []
        assert name in scratch(local_trino)
    finally:
        query(local_trino, f'DROP TABLE IF EXISTS scratch."{name}"')


def test_sweeper_sensor_reports_what_it_dropped(
    local_trino, ledger, trino_resource, pipeline_env
) -> None:
    from report_pipeline.orchestration.sweeper import build_sweeper_sensor

    finished = saga_in(ledger, SagaState.COMPENSATED)
    name = scratch_table_name(finished, "summary")
    create(local_trino, name)
    sensor = build_sweeper_sensor(min_age_seconds=0)
    resources = {
        "trino": trino_resource,
        "ledger": LedgerResource(url=pipeline_env["REPORT_PIPELINE_LEDGER_URL"]),
    }
    with dg.build_sensor_context(resources=resources) as context:
        result = sensor.evaluate_tick(context)
    assert result.run_requests == []
    assert f"lake.scratch.{name}" in (result.skip_message or "")
    assert name not in scratch(local_trino)
