"""A scripted step runner: the saga engine's collaborator, recording what it was asked to do."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import sqlalchemy as sa

from report_pipeline.saga import (
    AttemptStatus,
    PermanentStepError,
    RetryPolicy,
    SagaCoordinator,
    SagaDefinition,
    StatementFate,
    StatementListener,
    StepDefinition,
    StepResult,
    TransientStepError,
)
from report_pipeline.saga.ledger import SqlLedger

CHAIN = SagaDefinition(
    "chain",
    (
        StepDefinition("create_temp", created_tables=("temp",)),
        StepDefinition("write_report", depends_on=("create_temp",)),
        StepDefinition("drop_temp", depends_on=("write_report",), compensable=False),
    ),
)
FAN_OUT = SagaDefinition(
    "fan_out",
    (
        StepDefinition("left", created_tables=("left_table",)),
        StepDefinition("right", created_tables=("right_table",)),
        StepDefinition("join", depends_on=("left", "right")),
        StepDefinition("cleanup", depends_on=("join",), compensable=False),
    ),
)


@dataclass
class ScriptedRunner:
    """Runs nothing remote: each call is recorded, and scripted failures are raised in order."""

    action_failures: dict[str, list[Exception]] = field(default_factory=dict)
    compensation_failures: dict[str, list[Exception]] = field(default_factory=dict)
    always_fail_compensation: set[str] = field(default_factory=set)
    # how a compensation's stop of each statement ends (default: cancelled), or the error it raises
    statement_fates: dict[str, StatementFate | Exception] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)

    def created_tables(self, step: StepDefinition) -> list[str]:
        return [f"scratch.saga_{name}" for name in step.created_tables]

    def run_action(
        self, step: StepDefinition, on_statement: StatementListener | None = None
    ) -> StepResult:
        self.calls.append(("action", step.name))
        if on_statement is not None:
            on_statement(f"q-{step.name}")
        failures = self.action_failures.get(step.name)
        if failures:
            raise failures.pop(0)
        return StepResult(query_id=f"q-{step.name}", rows=1, bytes=1000, queued_seconds=0.02)

    def run_compensation(
        self, step: StepDefinition, on_statement: StatementListener | None = None
    ) -> StepResult:
        self.calls.append(("compensation", step.name))
        if step.name in self.always_fail_compensation:
            raise TransientStepError(f"cannot undo {step.name}", error_name="HIVE_METASTORE_ERROR")
        failures = self.compensation_failures.get(step.name)
        if failures:
            raise failures.pop(0)
        return StepResult(query_id=f"undo-{step.name}")

    def stop_statement(self, statement_id: str) -> StatementFate:
        self.calls.append(("stop", statement_id))
        fate = self.statement_fates.get(
            statement_id, StatementFate(AttemptStatus.FAILED, "cancelled", "USER_CANCELED")
        )
        if isinstance(fate, Exception):
            raise fate
        return fate

    def compensations(self) -> list[str]:
        return [name for kind, name in self.calls if kind == "compensation"]


def transient(message: str = "metastore unavailable") -> TransientStepError:
    return TransientStepError(message, error_name="HIVE_METASTORE_ERROR")


def permanent(message: str = "table not found") -> PermanentStepError:
    return PermanentStepError(message, error_name="TABLE_NOT_FOUND")


def isolated_schema_url(postgres_url: str) -> str:
    """A URL whose connections work in a new, empty schema: each test gets a ledger of its own."""
    schema = f"test_{secrets.token_hex(4)}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{postgres_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["postgresql", "sqlite"])
def ledger(request, tmp_path) -> Iterator[SqlLedger]:
    """The ledger on the real PostgreSQL server (production) and on SQLite (the demo)."""
    if request.param == "postgresql":
        ledger = SqlLedger(isolated_schema_url(request.getfixturevalue("postgres_url")))
    else:
        ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    ledger.migrate()
    yield ledger
    ledger.close()


FAST = RetryPolicy(max_attempts=3, initial_delay_seconds=0.0)


def coordinator(ledger: SqlLedger, definition: SagaDefinition = CHAIN) -> SagaCoordinator:
    return SagaCoordinator(ledger, definition, undo_retry=FAST)
