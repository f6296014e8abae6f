"""The ledger's own guarantees: schema management, transactional transitions, isolation of sagas."""

from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from report_pipeline.saga import (
    AttemptKind,
    AttemptStatus,
    SagaFenced,
    SagaState,
    StepProgress,
    StepResult,
)
from report_pipeline.saga.errors import InvalidTransition
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import TERMINAL_STATES
from report_pipeline.saga.scratch_names import parse_scratch_name, scratch_table_name
from report_pipeline.storage import schema
from report_pipeline.storage.schema import LATEST_VERSION
from report_pipeline_tests.builders import run_steps, state_of
from report_pipeline_tests.saga.conftest import (
    FAN_OUT,
    ScriptedRunner,
    coordinator,
    isolated_schema_url,
    permanent,
)


def test_migrate_is_idempotent(ledger) -> None:
    assert ledger.migrate() == LATEST_VERSION
    assert ledger.migrate() == LATEST_VERSION


def test_concurrent_migrations_do_not_collide(postgres_url) -> None:
    url = isolated_schema_url(postgres_url)
    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: SqlLedger(url).migrate(), range(4)))
    assert versions == [LATEST_VERSION] * 4


def test_a_version_1_ledger_is_upgraded_keeping_its_sagas(ledger) -> None:
    ledger.create_saga("old", "chain", {}, "run-1")
    attempt = ledger.start_attempt(
        "old", "create_temp", AttemptKind.ACTION, "run-1", 1, require_running=True
    )
    v2_columns = [
        "queued_seconds",
        "progress_state",
        "progress_percent",
        "progress_rows",
        "progress_bytes",
        "progress_at",
    ]
    with ledger.engine.begin() as connection:  # what version 1 looked like
        operations = Operations(MigrationContext.configure(connection))
        with operations.batch_alter_table("saga_step_attempts") as batch:
            for column in v2_columns:
                batch.drop_column(column)
        with operations.batch_alter_table("sagas") as batch:
            batch.drop_column("interrupted_steps")
        connection.execute(sa.text("DELETE FROM saga_ledger_version"))
        connection.execute(
            sa.text(
                "INSERT INTO saga_ledger_version (version, applied_at) "
                "VALUES (1, CURRENT_TIMESTAMP)"
            )
        )
    assert ledger.migrate() == LATEST_VERSION
    columns = {c["name"] for c in sa.inspect(ledger.engine).get_columns("saga_step_attempts")}
    assert set(v2_columns) <= columns
    ledger.record_progress("old", "create_temp", StepProgress("RUNNING", 50.0, 10, 100))
    [kept] = ledger.attempts("old")
    assert (kept.id, kept.progress.percent) == (attempt, 50.0)
    assert ledger.get_saga("old").interrupted_steps == ()


def test_the_index_of_unfolded_endings_lists_every_end_state() -> None:
    [index] = [i for i in schema.transitions.indexes if i.name == "ix_saga_transitions_unfolded"]
    listed = re.findall(r"'(\w+)'", str(index.dialect_options["postgresql"]["where"]))
    assert sorted(listed) == sorted(state.value for state in TERMINAL_STATES)


@pytest.mark.parametrize(
    "saga_id",
    [str(uuid.uuid4()), "Run-6F1C-e2", "a-much-longer-saga-id-than-forty-letters-and-digits-0123"],
)
def test_a_saga_is_found_by_the_key_its_scratch_tables_carry(ledger, saga_id) -> None:
    ledger.create_saga(saga_id, "chain", {}, "run-1")
    named = parse_scratch_name(scratch_table_name(saga_id, "temp"))
    assert named is not None and named.table == "temp"
    found = ledger.find_saga_by_key(named.saga_key)
    assert found is not None and found.saga_id == saga_id
    assert ledger.find_saga_by_key("nosuchsaga") is None


def test_progress_is_recorded_on_the_steps_running_attempt(ledger) -> None:
    ledger.create_saga("s", "chain", {}, "run-1")
    attempt = ledger.start_attempt(
        "s", "create_temp", AttemptKind.ACTION, "run-1", 1, require_running=True
    )
    ledger.record_progress("s", "create_temp", StepProgress("RUNNING", 12.5, 1000, 2000))
    ledger.finish_attempt(
        "s", attempt, AttemptStatus.SUCCEEDED, result=StepResult(queued_seconds=0.3)
    )
    ledger.record_progress(
        "s", "create_temp", StepProgress("RUNNING", 99.0, 1, 1)
    )  # too late: nothing open
    [recorded] = ledger.attempts("s")
    assert (
        recorded.progress.state,
        recorded.progress.percent,
        recorded.progress.rows,
        recorded.progress.bytes,
        recorded.queued_seconds,
    ) == ("RUNNING", 12.5, 1000, 2000, 0.3)


def test_creating_an_existing_saga_changes_nothing(ledger) -> None:
    assert ledger.create_saga("s", "chain", {"a": 1}, "run-1") is True
    assert ledger.create_saga("s", "chain", {"a": 2}, "run-2") is False
    assert ledger.get_saga("s").parameters == {"a": 1}


def test_parameters_round_trip(ledger) -> None:
    ledger.create_saga("s", "chain", {"start_date": "2026-01-01", "min_events": 5}, "run-1")
    assert ledger.get_saga("s").parameters == {"start_date": "2026-01-01", "min_events": 5}


def test_disallowed_transition_raises_and_changes_nothing(ledger) -> None:
    ledger.create_saga("s", "chain", {}, "run-1")
    with pytest.raises(InvalidTransition):
        ledger.transition("s", {SagaState.RUNNING}, SagaState.COMPENSATED, "skipping ahead")
    assert ledger.get_saga("s").state == SagaState.RUNNING
    assert len(ledger.transitions("s")) == 1


def test_transition_from_an_unexpected_state_is_a_no_op(ledger) -> None:
    ledger.create_saga("s", "chain", {}, "run-1")
    assert (
        ledger.transition("s", {SagaState.COMPENSATING}, SagaState.COMPENSATED, "not now") is None
    )
    assert ledger.get_saga("s").state == SagaState.RUNNING


def test_attempt_start_is_fenced_on_the_saga_state(ledger) -> None:
    ledger.create_saga("s", "chain", {}, "run-1")
    ledger.transition("s", {SagaState.RUNNING}, SagaState.FAILED, "failed")
    with pytest.raises(SagaFenced):
        ledger.start_attempt("s", "step", AttemptKind.ACTION, "run-1", 1, require_running=True)
    assert ledger.attempts("s") == []


def test_concurrent_sagas_do_not_interfere(ledger) -> None:
    def run(saga_id: str) -> SagaState:
        failing: dict[str, list[Exception]] = (
            {"join": [permanent()]} if saga_id.endswith(("1", "3", "5")) else {}
        )
        runner = ScriptedRunner(action_failures=failing)
        reports = coordinator(ledger, FAN_OUT)
        run_steps(reports, runner, saga_id, run_id=f"run-{saga_id}", parameters={"n": saga_id})
        return state_of(ledger, saga_id)

    ids = [f"saga-{i}" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        results = dict(zip(ids, pool.map(run, ids), strict=True))
    for saga_id, state in results.items():
        expected = (
            SagaState.COMPENSATED if saga_id.endswith(("1", "3", "5")) else SagaState.SUCCEEDED
        )
        assert state == expected == ledger.get_saga(saga_id).state
        assert {a.saga_id for a in ledger.attempts(saga_id)} == {saga_id}
        assert ledger.get_saga(saga_id).parameters == {"n": saga_id}
