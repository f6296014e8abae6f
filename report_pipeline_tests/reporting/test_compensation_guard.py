"""The runner's last check before an undo statement reaches Trino: the rendered statement, parsed,
may only drop a scratch table the ledger recorded for this saga (or delete this saga's rows). Run
on the local engine: what is refused must leave the engine's tables as they were."""

from __future__ import annotations

import uuid

import pytest

from report_pipeline.local_trino import LocalTrino
from report_pipeline.reporting import REPORTS_DIR, load_report
from report_pipeline.reporting.compensation_sql import RefusedCompensation
from report_pipeline.reporting.runner import ReportStepRunner
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.trino.client import TrinoClient, TrinoSettings
from report_pipeline.trino.sql import Statement

DAILY = load_report(REPORTS_DIR / "daily_country_report")
PARAMETERS = DAILY.parse_parameters({"start_date": "2026-01-01", "end_date": "2026-01-31"})


@pytest.fixture
def client(local_trino: LocalTrino) -> TrinoClient:
    return TrinoClient(
        TrinoSettings(
            host=local_trino.host,
            port=local_trino.port,
            user="guard-tests",
            catalog=local_trino.catalog,
        )
    )


def runner(
    client: TrinoClient, spec: ReportSpec, recorded: str = "its own tables"
) -> ReportStepRunner:
    """A runner of a new saga whose ledger records its scratch tables (`recorded=""`: none)."""
    saga_id = str(uuid.uuid4())
    own = {
        str(name)
        for name in spec.scratch_tables(saga_id, client.settings.catalog, "scratch").values()
    }
    return ReportStepRunner(
        spec,
        client,
        saga_id,
        PARAMETERS,
        scratch_schema="scratch",
        recorded_tables=lambda: own if recorded else set(),
    )


def scratch_tables(client: TrinoClient) -> set[str]:
    rows = client.execute(
        Statement(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'scratch'", []
        )
    ).rows
    return {row[0] for row in rows}


def create(client: TrinoClient, table: str) -> None:
    client.execute(Statement(f"CREATE TABLE {table} AS SELECT 1 AS x", []))


def drop(client: TrinoClient, table: str) -> None:
    client.execute(Statement(f"DROP TABLE IF EXISTS {table}", []))


CREATE_SUMMARY = DAILY.saga_definition().step("create_summary")


def test_rendered_drop_of_an_unrecorded_table_is_refused_before_reaching_trino(client) -> None:
    # a spec that skipped load-time validation: its undo names another saga's scratch table
    spec = DAILY.model_copy(
        update={
            "sql": {
                **DAILY.sql,
                "drop_summary.sql": (
                    "DROP TABLE IF EXISTS lake.scratch.saga_other_summary -- ${summary}"
                ),
            }
        }
    )
    create(client, "scratch.saga_other_summary")
    try:
        with pytest.raises(
            RefusedCompensation, match="may only drop a \\$\\{table\\} scratch table"
        ) as refused:
            runner(client, spec).run_compensation(CREATE_SUMMARY)
        assert refused.value.transient is False
        assert "saga_other_summary" in scratch_tables(client)
    finally:
        drop(client, "scratch.saga_other_summary")


def test_drop_of_a_recorded_scratch_table_of_the_saga_is_sent(client) -> None:
    saga = runner(client, DAILY)
    create(client, str(saga.tables["summary"]))
    saga.run_compensation(CREATE_SUMMARY)
    assert saga.tables["summary"].table not in scratch_tables(client)


def test_drop_of_a_scratch_table_the_ledger_never_recorded_is_skipped(client) -> None:
    saga = runner(client, DAILY, recorded="")
    create(
        client, str(saga.tables["summary"])
    )  # made behind the ledger's back: not the saga's to drop
    try:
        assert saga.run_compensation(CREATE_SUMMARY).query_id is None
        assert saga.tables["summary"].table in scratch_tables(client)
    finally:
        drop(client, str(saga.tables["summary"]))


def test_delete_of_the_sagas_report_rows_is_sent_and_spares_other_sagas(client) -> None:
    saga = runner(client, DAILY)
    existed = "daily_country_report" in {
        row[0]
        for row in client.execute(
            Statement(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'reports'",
                [],
            )
        ).rows
    }
    client.execute(Statement(DAILY.sql_text("create_report_table.sql"), []))
    insert = "INSERT INTO reports.daily_country_report (saga_id, country) VALUES (?, 'DE')"
    other = str(uuid.uuid4())
    try:
        for saga_id in (saga.saga_id, other):
            client.execute(Statement(insert, [saga_id]))
        saga.run_compensation(DAILY.saga_definition().step("write_report"))
        rows = client.execute(
            Statement(
                "SELECT saga_id FROM reports.daily_country_report WHERE saga_id IN (?, ?)",
                [saga.saga_id, other],
            )
        ).rows
        assert rows == [[other]]
    finally:
        client.execute(
            Statement("DELETE FROM reports.daily_country_report WHERE saga_id = ?", [other])
        )
        if not existed:
            drop(client, "reports.daily_country_report")
