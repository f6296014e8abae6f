"""The reports' sagas on the real Trino's table formats: the PostgreSQL connector (`lake`) and
Iceberg on local files (`iceberg`, where production report tables mostly live). The saga engine runs
the shipped SQL directly (no Dagster): every step index stopped and compensated leaves nothing
behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import trino

from report_pipeline.reporting import load_reports
from report_pipeline.reporting.runner import ReportStepRunner
from report_pipeline.saga import FailureKind, SagaCoordinator, SagaState
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.scratch_names import saga_key
from report_pipeline.trino.client import TrinoClient, TrinoSettings

REPORTS = load_reports()
PARAMETERS = {
    "daily_country_report": {"start_date": "2026-01-01", "end_date": "2026-01-31", "min_events": 5},
    "weekly_engagement_report": {"week_start": "2026-01-05", "min_active_days": 2},
}
CATALOGS = ["lake", "iceberg"]
# (report, steps completed before the saga stops): 0 .. every step but the last
STOPS = [(report, done) for report, spec in REPORTS.items() for done in range(len(spec.steps))]


@pytest.fixture(scope="module")
def saga_ledger(postgres_url: str) -> Iterator[SqlLedger]:
    ledger = SqlLedger(postgres_url)
    ledger.migrate()
    yield ledger
    ledger.close()


class Saga:
    def __init__(self, real_trino, ledger: SqlLedger, catalog: str, report: str):
        self.spec = REPORTS[report]
        self.id = str(uuid.uuid4())
        self.catalog = catalog
        self.server = real_trino
        self.ledger = ledger
        parameters = self.spec.parse_parameters(PARAMETERS[report])
        client = TrinoClient(
            TrinoSettings(
                host=real_trino.host, port=real_trino.port, user="saga-tests", catalog=catalog
            )
        )
        runner = ReportStepRunner(
            self.spec,
            client,
            self.id,
            parameters,
            scratch_schema="scratch",
            recorded_tables=lambda: set(ledger.created_tables(self.id)),
        )
        coordinator = SagaCoordinator(ledger, self.spec.saga_definition())
        self.handle = coordinator.saga(self.id, runner=runner)
        self.handle.start(PARAMETERS[report])

    def run(self, steps: list[str]) -> None:
        for step in steps:
            self.handle.execute_step(step)

    def scratch_tables(self) -> list[str]:
        return [
            r[0]
            for r in self.query(
                f"SELECT table_name FROM {self.catalog}.information_schema.tables "
                "WHERE table_schema = 'scratch' AND table_name LIKE ?",
                [f"saga_{saga_key(self.id)}_%"],
            )
        ]

    def report_rows(self) -> list[list]:
        exists = self.query(
            f"SELECT count(*) FROM {self.catalog}.information_schema.tables "
            "WHERE table_schema = 'reports' AND table_name = ?",
            [self.spec.name],
        )[0][0]
        if not exists:
            return []
        return self.query(
            f"SELECT * FROM {self.catalog}.reports.{self.spec.name} WHERE saga_id = ?", [self.id]
        )

    def query(self, sql: str, parameters: list) -> list[list]:
        with trino.dbapi.connect(
            host=self.server.host, port=self.server.port, user="assertions"
        ) as connection:
            cursor = connection.cursor()
            cursor.execute(sql, parameters)
            return cursor.fetchall()


@pytest.mark.parametrize("catalog", CATALOGS)
@pytest.mark.parametrize("report", sorted(REPORTS))
def test_report_completes_on_the_catalog(real_trino, saga_ledger, catalog, report) -> None:
    saga = Saga(real_trino, saga_ledger, catalog, report)
    saga.run(saga.spec.saga_definition().order())
    assert saga_ledger.get_saga(saga.id).state == SagaState.SUCCEEDED
    assert len(saga.report_rows()) == 12
    assert saga.scratch_tables() == []


@pytest.mark.parametrize("catalog", CATALOGS)
@pytest.mark.parametrize(("report", "done"), STOPS)
def test_stopping_after_each_step_is_compensated_on_the_catalog(
    real_trino, saga_ledger, catalog, report, done
) -> None:
    saga = Saga(real_trino, saga_ledger, catalog, report)
    order = saga.spec.saga_definition().order()
    saga.run(order[:done])
    state = saga.handle.compensate(
        FailureKind.STEP_FAILED, failed_step=order[done], error="stopped by the test"
    )
    assert state == SagaState.COMPENSATED
    assert saga.scratch_tables() == []
    assert saga.report_rows() == []
