"""Metrics computed from the ledger: what each saga outcome adds, on PostgreSQL and SQLite."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
import trino.exceptions
from alembic.migration import MigrationContext
from alembic.operations import Operations
from prometheus_client import CollectorRegistry

from report_pipeline.alerting.alerts import AlertKind, AlertLinks, run_failure_alert
from report_pipeline.alerting.outbox import AlertOutbox
from report_pipeline.observability import metrics
from report_pipeline.observability.metrics import FOLDING_VERSION, LedgerCollector, fold, history
from report_pipeline.observability.trino_error_names import KNOWN
from report_pipeline.saga import SagaState, StepError, StepProgress
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.storage.schema import metric_totals, sagas, step_attempts, transitions
from report_pipeline_tests.builders import chain_saga_in, run_chain
from report_pipeline_tests.conftest import run_in_thread
from report_pipeline_tests.saga.conftest import ScriptedRunner, coordinator, permanent, transient

CHAIN = "chain"


class Scrape:
    def __init__(self, ledger: SqlLedger, stuck_after_seconds: float = 900):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(ledger, stuck_after_seconds))

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def names(self) -> set[str]:
        return {family.name for family in self.registry.collect()}


def test_each_outcome_counts_one_execution_by_final_state(ledger) -> None:
    for saga_id, state in [
        ("s1", SagaState.SUCCEEDED),
        ("s2", SagaState.SUCCEEDED),
        ("c1", SagaState.COMPENSATED),
        ("m1", SagaState.FAILED_NEEDS_MANUAL),
    ]:
        chain_saga_in(ledger, saga_id, state)
    scrape = Scrape(ledger)
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="succeeded") == 2
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="compensated") == 1
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="failed_needs_manual") == 1


def test_a_live_saga_is_not_an_ended_execution_but_its_report_starts_every_outcome_at_zero(
    ledger,
) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    scrape = Scrape(ledger)
    for status in ("succeeded", "compensated", "failed_needs_manual"):
        assert scrape.value("saga_executions_total", saga_name=CHAIN, status=status) == 0


def test_a_reexecution_that_succeeds_counts_as_a_second_execution(ledger) -> None:
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    ledger.begin_rerun("c1", "run-2", "run-c1")
    ledger.transition(
        "c1", {SagaState.RUNNING}, SagaState.SUCCEEDED, "all steps succeeded", "run-2"
    )
    scrape = Scrape(ledger)
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="compensated") == 1
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="succeeded") == 1
    assert scrape.value("saga_duration_seconds_count", saga_name=CHAIN, status="succeeded") == 1


def test_saga_duration_runs_from_start_to_end_state(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    saga = ledger.get_saga("s1")
    took = (saga.updated_at - saga.created_at).total_seconds()
    scrape = Scrape(ledger)
    assert scrape.value("saga_duration_seconds_count", saga_name=CHAIN, status="succeeded") == 1
    assert scrape.value(
        "saga_duration_seconds_sum", saga_name=CHAIN, status="succeeded"
    ) == pytest.approx(took, abs=0.01)
    assert (
        scrape.value("saga_duration_seconds_bucket", saga_name=CHAIN, status="succeeded", le="1.0")
        == 1
    )


def test_step_durations_are_labelled_by_step_and_outcome(ledger) -> None:
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    scrape = Scrape(ledger)
    assert (
        scrape.value(
            "saga_step_duration_seconds_count",
            saga_name=CHAIN,
            step_name="create_temp",
            status="succeeded",
        )
        == 1
    )
    assert (
        scrape.value(
            "saga_step_duration_seconds_count",
            saga_name=CHAIN,
            step_name="write_report",
            status="failed",
        )
        == 1
    )
    assert (
        scrape.value(
            "saga_step_duration_seconds_count",
            saga_name=CHAIN,
            step_name="drop_temp",
            status="succeeded",
        )
        is None
    )


def test_histogram_buckets_are_cumulative(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    with ledger.engine.begin() as connection:  # one slow attempt: 42 s
        first = connection.execute(sa.select(sa.func.min(step_attempts.c.id))).scalar()
        start = connection.execute(
            sa.select(step_attempts.c.started_at).where(step_attempts.c.id == first)
        ).scalar()
        connection.execute(
            step_attempts.update()
            .where(step_attempts.c.id == first)
            .values(ended_at=start + dt.timedelta(seconds=42))
        )
    scrape = Scrape(ledger)

    def bucket(le: str) -> float | None:
        return scrape.value(
            "saga_step_duration_seconds_bucket",
            saga_name=CHAIN,
            step_name="create_temp",
            status="succeeded",
            le=le,
        )

    assert (bucket("30.0"), bucket("60.0"), bucket("+Inf")) == (0, 1, 1)
    assert scrape.value(
        "saga_step_duration_seconds_sum",
        saga_name=CHAIN,
        step_name="create_temp",
        status="succeeded",
    ) == pytest.approx(42, abs=0.01)


def test_compensations_count_each_undo_attempt_by_outcome(ledger) -> None:
    runner = ScriptedRunner(
        action_failures={"write_report": [permanent()]},
        compensation_failures={"create_temp": [transient()]},
    )
    assert run_chain(ledger, "c1", runner) == SagaState.COMPENSATED
    scrape = Scrape(ledger)
    assert (
        scrape.value(
            "saga_compensations_total", saga_name=CHAIN, step_name="create_temp", outcome="failed"
        )
        == 1
    )
    assert (
        scrape.value(
            "saga_compensations_total",
            saga_name=CHAIN,
            step_name="create_temp",
            outcome="succeeded",
        )
        == 1
    )
    assert (
        scrape.value(
            "saga_compensations_total",
            saga_name=CHAIN,
            step_name="write_report",
            outcome="succeeded",
        )
        == 1
    )
    assert (
        scrape.value(
            "saga_compensations_total", saga_name=CHAIN, step_name="write_report", outcome="failed"
        )
        == 0
    )


def test_sagas_by_state_shows_every_state_including_zero(ledger) -> None:
    chain_saga_in(ledger, "m1", SagaState.FAILED_NEEDS_MANUAL)
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    scrape = Scrape(ledger)
    assert scrape.value("saga_sagas", saga_name=CHAIN, state="FAILED_NEEDS_MANUAL") == 1
    assert scrape.value("saga_sagas", saga_name=CHAIN, state="RUNNING") == 1
    assert scrape.value("saga_sagas", saga_name=CHAIN, state="COMPENSATED") == 0


def _age(ledger: SqlLedger, saga_id: str, seconds: float) -> None:
    """Move every moment recorded for the saga `seconds` into the past."""
    shift = dt.timedelta(seconds=seconds)
    with ledger.engine.begin() as connection:
        for row in connection.execute(
            sa.select(step_attempts).where(step_attempts.c.saga_id == saga_id)
        ).mappings():
            moments = {
                k: row[k] - shift
                for k in ("started_at", "ended_at", "progress_at")
                if row[k] is not None
            }
            connection.execute(
                step_attempts.update().where(step_attempts.c.id == row["id"]).values(**moments)
            )
        row = (
            connection.execute(sa.select(sagas).where(sagas.c.saga_id == saga_id)).mappings().one()
        )
        connection.execute(
            sagas.update()
            .where(sagas.c.saga_id == saga_id)
            .values(created_at=row["created_at"] - shift, updated_at=row["updated_at"] - shift)
        )


def test_a_live_saga_silent_longer_than_the_threshold_is_stuck(ledger) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    chain_saga_in(ledger, "r2", SagaState.COMPENSATING)
    chain_saga_in(ledger, "fresh", SagaState.RUNNING)
    _age(ledger, "r1", 1000)
    _age(ledger, "r2", 1000)
    scrape = Scrape(ledger, stuck_after_seconds=900)
    assert scrape.value("saga_stuck_sagas", saga_name=CHAIN) == 2
    assert scrape.value("saga_oldest_active_age_seconds", saga_name=CHAIN) == pytest.approx(
        1000, abs=5
    )


def test_query_progress_is_a_sign_of_life(ledger) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    _age(ledger, "r1", 1000)
    ledger.record_progress("r1", "write_report", StepProgress("RUNNING", 40.0, 1000, 10_000))
    assert Scrape(ledger, stuck_after_seconds=900).value("saga_stuck_sagas", saga_name=CHAIN) == 0


def test_an_ended_saga_is_never_stuck(ledger) -> None:
    chain_saga_in(ledger, "m1", SagaState.FAILED_NEEDS_MANUAL)
    _age(ledger, "m1", 10_000)
    assert Scrape(ledger, stuck_after_seconds=900).value("saga_stuck_sagas", saga_name=CHAIN) == 0


def test_trino_statement_figures_come_from_finished_attempts(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    chain_saga_in(ledger, "s2", SagaState.SUCCEEDED)
    scrape = Scrape(ledger)
    assert scrape.value("saga_trino_rows_total", saga_name=CHAIN, step_name="create_temp") == 2
    assert (
        scrape.value("saga_trino_processed_bytes_total", saga_name=CHAIN, step_name="create_temp")
        == 2000
    )
    assert scrape.value("saga_trino_queued_seconds_count", saga_name=CHAIN) == 6
    assert scrape.value("saga_trino_queued_seconds_sum", saga_name=CHAIN) == pytest.approx(0.12)


def test_trino_errors_are_counted_by_error_name(ledger) -> None:
    runner = ScriptedRunner(action_failures={"write_report": [transient(), permanent()]})
    saga = coordinator(ledger).saga("e1", run_id="run-e1", runner=runner)
    saga.start({})
    saga.execute_step("create_temp")
    for attempt in (1, 2):
        with pytest.raises(StepError):
            saga.execute_step("write_report", attempt)
    scrape = Scrape(ledger)
    assert (
        scrape.value("saga_trino_errors_total", saga_name=CHAIN, error_name="HIVE_METASTORE_ERROR")
        == 1
    )
    assert (
        scrape.value("saga_trino_errors_total", saga_name=CHAIN, error_name="TABLE_NOT_FOUND") == 1
    )


def test_an_error_name_that_is_not_a_code_is_reported_as_other(ledger) -> None:
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    with ledger.engine.begin() as connection:
        connection.execute(
            step_attempts.update()
            .where(step_attempts.c.error_name.is_not(None))
            .values(error_name="weird: value with spaces")
        )
    assert Scrape(ledger).value("saga_trino_errors_total", saga_name=CHAIN, error_name="OTHER") == 1


def test_alerts_are_counted_once_settled_and_pending_until_then(ledger) -> None:
    outbox = AlertOutbox(ledger.engine)
    for key, kind in (
        ("a1", AlertKind.RUN_FAILED),
        ("a2", AlertKind.RUN_FAILED),
        ("a3", AlertKind.FAILED_NEEDS_MANUAL),
    ):
        alert = run_failure_alert(CHAIN, key, "FAILURE", None, AlertLinks(), {}, None)
        outbox.queue(dataclasses.replace(alert, key=key, kind=kind))
    outbox.mark_delivered("a1", attempts=2)
    outbox.mark_failed_attempt(
        "a3", attempts=5, error="refused", next_attempt_at=dt.datetime.now(dt.UTC), gave_up=True
    )
    scrape = Scrape(ledger)
    assert scrape.value("saga_alert_deliveries_total", kind="run_failed", outcome="delivered") == 1
    assert (
        scrape.value("saga_alert_deliveries_total", kind="failed_needs_manual", outcome="failed")
        == 1
    )
    assert scrape.value("saga_alerts_pending", kind="run_failed") == 1
    assert scrape.value("saga_alert_delivery_attempts_total", kind="failed_needs_manual") == 5


def test_a_second_exporter_reports_the_same_figures(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    first, second = Scrape(ledger), Scrape(ledger)

    def samples(scrape: Scrape) -> list[tuple]:
        return sorted(
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for f in scrape.registry.collect()
            for s in f.samples
            if f.name != "saga_ledger_scrape_duration_seconds"
            and not f.name.startswith("saga_oldest")
        )

    assert samples(first) == samples(second)


def test_every_family_is_exported_even_before_the_first_saga(ledger) -> None:
    assert Scrape(ledger).names() >= {
        "saga_executions",
        "saga_duration_seconds",
        "saga_step_duration_seconds",
        "saga_compensations",
        "saga_sagas",
        "saga_stuck_sagas",
        "saga_trino_queued_seconds",
        "saga_trino_rows",
        "saga_trino_processed_bytes",
        "saga_trino_errors",
        "saga_alert_deliveries",
        "saga_alerts_pending",
        "saga_ledger_up",
    }


def _fail_write_report(ledger: SqlLedger, saga_id: str, times: int) -> None:
    """A saga whose write_report failed `times` times (each attempt a failed step attempt)."""
    runner = ScriptedRunner(action_failures={"write_report": [transient() for _ in range(times)]})
    saga = coordinator(ledger).saga(saga_id, run_id=f"run-{saga_id}", runner=runner)
    saga.start({})
    saga.execute_step("create_temp")
    for attempt in range(1, times + 1):
        with pytest.raises(StepError):
            saga.execute_step("write_report", attempt)


def test_error_names_trino_does_not_know_are_counted_as_one_other_series(ledger) -> None:
    _fail_write_report(ledger, "e1", 3)
    with ledger.engine.begin() as connection:
        failed = (
            connection.execute(
                sa.select(step_attempts.c.id)
                .where(step_attempts.c.status == "FAILED")
                .order_by(step_attempts.c.id)
            )
            .scalars()
            .all()
        )
        for attempt, name in zip(
            failed, ["MADE_UP_ERROR_1", "MADE_UP_ERROR_2", "EXCEEDED_TIME_LIMIT"], strict=True
        ):
            connection.execute(
                step_attempts.update().where(step_attempts.c.id == attempt).values(error_name=name)
            )
    scrape = Scrape(ledger)
    labels = {
        s.labels["error_name"]
        for f in scrape.registry.collect()
        if f.name == "saga_trino_errors"
        for s in f.samples
    }
    assert labels == {"OTHER", "EXCEEDED_TIME_LIMIT"}
    assert scrape.value("saga_trino_errors_total", saga_name=CHAIN, error_name="OTHER") == 2


def test_every_error_name_the_trino_client_gives_is_a_label_of_its_own() -> None:
    sources = (Path(metrics.__file__).parents[1] / "trino").glob("*.py")
    named = {
        name
        for path in sources
        for name in re.findall(r'error_name="([A-Za-z0-9_]+)"', path.read_text())
    }
    http = {
        cls.__name__
        for cls in (
            trino.exceptions.Http502Error,
            trino.exceptions.Http503Error,
            trino.exceptions.Http504Error,
        )
    }
    assert named and named | http <= KNOWN


def _unfolded(ledger: SqlLedger) -> int:
    with ledger.engine.connect() as connection:
        return sum(
            connection.execute(
                sa.select(sa.func.count()).where(table.c.metrics_fold.is_(None), condition)
            ).scalar_one()
            for table, condition in (
                (step_attempts, step_attempts.c.ended_at.is_not(None)),
                (transitions, transitions.c.new_state.in_(metrics._TERMINAL)),
            )
        )


def test_a_scrape_folds_the_finished_history_into_the_totals_and_counts_it_once(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    first = Scrape(ledger)
    assert first.value("saga_executions_total", saga_name=CHAIN, status="succeeded") == 1
    assert _unfolded(ledger) == 0
    with ledger.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).select_from(metric_totals)).scalar() > 0
        )
    chain_saga_in(ledger, "s2", SagaState.SUCCEEDED)
    for _ in range(2):  # the second scrape folds s2; the third has nothing new to fold
        scrape = Scrape(ledger)
        assert scrape.value("saga_executions_total", saga_name=CHAIN, status="succeeded") == 2
        assert (
            scrape.value(
                "saga_step_duration_seconds_count",
                saga_name=CHAIN,
                step_name="create_temp",
                status="succeeded",
            )
            == 2
        )


def _direct_and_folded(ledger: SqlLedger) -> tuple[dict, dict]:
    """The history summed from every row, and as the totals plus the rows not folded into them."""
    with ledger.engine.connect() as connection:
        return history(connection, FOLDING_VERSION - 1), history(connection, FOLDING_VERSION)


def test_totals_plus_the_rows_not_folded_yet_give_the_figures_of_every_row(ledger) -> None:
    for saga_id, state in [
        ("s1", SagaState.SUCCEEDED),
        ("c1", SagaState.COMPENSATED),
        ("m1", SagaState.FAILED_NEEDS_MANUAL),
        ("r1", SagaState.RUNNING),
    ]:
        chain_saga_in(ledger, saga_id, state)
    _fail_write_report(ledger, "e1", 2)
    with ledger.engine.connect() as connection:
        assert fold(connection, chunk=4) == 4  # part of the history folded, the rest not
    assert _unfolded(ledger) > 0
    direct, folded = _direct_and_folded(ledger)
    assert folded == pytest.approx(direct)


def test_two_exporters_scraping_at_once_count_every_row_once(ledger, monkeypatch) -> None:
    monkeypatch.setattr(
        metrics, "FOLD_CHUNK", 2
    )  # many small folds, so the two exporters' scrapes overlap
    for saga_id, state in [
        ("s1", SagaState.SUCCEEDED),
        ("s2", SagaState.SUCCEEDED),
        ("c1", SagaState.COMPENSATED),
        ("m1", SagaState.FAILED_NEEDS_MANUAL),
    ]:
        chain_saga_in(ledger, saga_id, state)
    exporters = [
        run_in_thread(lambda: [Scrape(ledger).value("saga_ledger_up") for _ in range(3)])
        for _ in range(2)
    ]
    for thread, outcome in exporters:
        thread.join(timeout=60)
        assert outcome == {"result": [1, 1, 1]}
    assert _unfolded(ledger) == 0
    direct, folded = _direct_and_folded(ledger)
    assert folded == pytest.approx(direct)


def test_a_ledger_not_yet_upgraded_to_totals_is_summed_from_every_row(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    with ledger.engine.begin() as connection:  # what version 3 looked like
        operations = Operations(MigrationContext.configure(connection))
        for table in (step_attempts, transitions):
            operations.drop_index(f"ix_{table.name}_unfolded", table_name=table.name)
            with operations.batch_alter_table(table.name) as batch:
                batch.drop_column("metrics_fold")
        operations.drop_table(metric_totals.name)
        connection.execute(sa.text("DELETE FROM saga_ledger_version"))
        connection.execute(
            sa.text(
                "INSERT INTO saga_ledger_version (version, applied_at) "
                "VALUES (3, CURRENT_TIMESTAMP)"
            )
        )
    scrape = Scrape(ledger)
    assert scrape.value("saga_ledger_up") == 1
    assert scrape.value("saga_executions_total", saga_name=CHAIN, status="succeeded") == 1
    assert (
        scrape.value(
            "saga_compensations_total",
            saga_name=CHAIN,
            step_name="create_temp",
            outcome="succeeded",
        )
        == 1
    )
