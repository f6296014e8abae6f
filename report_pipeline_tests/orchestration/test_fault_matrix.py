"""The fault matrix: each report x each step x each fault, run as real Dagster jobs on Postgres.

The cases are data. Every report under report_pipeline/reports meets every fault kind at every step,
and what must follow is derived from its spec: the steps that were live when the step failed (and
must be undone), those that never started, the undo a failing compensation leaves stuck, and the
report rows and scratch tables that remain. A new report gets its matrix with nothing written here.
Termination and kill -9 (which need the webserver and daemon) are in test_durability.py.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlglot import exp

from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.reporting import load_reports
from report_pipeline.reporting.spec import ReportSpec, StepSpec
from report_pipeline.saga import AttemptKind, AttemptStatus, FailureKind, SagaState
from report_pipeline.saga.coordinator import COMPENSATION_RETRY
from report_pipeline.saga.model import StepAttempt
from report_pipeline.saga.scratch_names import scratch_table_name
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.orchestration.conftest import (
    REPORTS,
    launch,
    report_rows,
    saga_of,
    scratch_tables,
)
from report_pipeline_tests.orchestration.statements import (
    parsed,
    rendered,
    scratch_table_written,
    sent_in_order,
    statement_pattern,
    step_statements,
    struck_file,
)

USER_ERROR: dict[str, Any] = {
    "action": "error",
    "error_name": "PERMISSION_DENIED",
    "message": "Access Denied (injected)",
}
TRANSIENT: dict[str, Any] = {
    "action": "error",
    "error_name": "HIVE_METASTORE_ERROR",
    "error_type": "EXTERNAL",
    "message": "metastore unavailable (injected)",
}


# --- what a report's spec says about a step that fails -------------------------------------------
@dataclass(frozen=True)
class FaultPoint:
    """A step where a fault strikes (its action's last statement), and the saga at that moment."""

    step: str
    live: tuple[str, ...]  # done before it started: every step it depends on, directly or not
    unstarted: tuple[str, ...]  # the steps that depend on it: they never start
    beside: tuple[str, ...]  # the others, on parallel branches: they may run, before or after it
    to_undo: tuple[str, ...]  # whose undo must run: the compensable live steps, and itself
    # the undo a failing compensation is given: its own, else that of the live step nearest to it
    # (None: nothing to undo)
    undo_to_break: str | None


def fault_points(spec: ReportSpec) -> list[FaultPoint]:
    order = spec.saga_definition().order()
    ancestors: dict[str, set[str]] = {}
    for step in order:  # dependencies come first in the order
        ancestors[step] = {a for d in spec.steps[step].depends_on for a in {d, *ancestors[d]}}
    points = []
    for step in order:
        live = [s for s in order if s in ancestors[step]]
        compensable = [s for s in [*live, step] if spec.steps[s].compensation]
        unstarted = [s for s in order if step in ancestors[s]]
        points.append(
            FaultPoint(
                step=step,
                live=tuple(live),
                unstarted=tuple(unstarted),
                beside=tuple(s for s in order if s not in {step, *live, *unstarted}),
                to_undo=tuple(compensable),
                undo_to_break=compensable[-1] if compensable else None,
            )
        )
    return points


@dataclass(frozen=True)
class Aftermath:
    """What stays of an ended saga: scratch tables (by the report's names) and report rows."""

    tables: frozenset[str]
    rows: bool


def aftermath(
    spec: ReportSpec, executed: list[tuple[str, str]], undone: Collection[str]
) -> Aftermath:
    """Play the statements that ran ((step, file), in order), then the undos that succeeded."""
    tables: set[str] = set()
    inserted_by: set[str] = set()
    for step, file in executed:
        tree, table = parsed(spec, file), scratch_table_written(spec, file)
        if isinstance(tree, exp.Create) and table:
            tables.add(table)
        elif isinstance(tree, exp.Drop) and table:
            tables.discard(table)
        elif isinstance(tree, exp.Insert) and not table:
            inserted_by.add(step)
    for step in undone:
        for file in spec.steps[step].compensation:
            if isinstance(parsed(spec, file), exp.Drop):
                tables.discard(scratch_table_written(spec, file) or "")
            else:  # a DELETE of the saga's rows
                inserted_by.discard(step)
    return Aftermath(frozenset(tables), bool(inserted_by))


# --- the fault kinds ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaultKind:
    name: str
    step_fault: Callable[[StepSpec], dict[str, Any]]  # the fault on the step's statement
    ends: SagaState
    stops: FailureKind | None = None  # why the saga stops, to be compensated (None: it does not)
    action_attempts: Callable[[StepSpec], int] | None = None  # of the struck step (None: not fixed)
    undo_failures: int | None = 0  # how often `undo_to_break` fails (None: every time)
    restart_engine: bool = False  # restart the engine while the struck statement runs
    sent_once: bool = False  # the struck statement reaches the engine once: never sent again


def attempts_allowed(step: StepSpec) -> int:
    return step.retry.max_retries + 1


FAULT_KINDS = [
    FaultKind(
        "user_error",
        lambda step: USER_ERROR,
        SagaState.COMPENSATED,
        FailureKind.STEP_FAILED,
        action_attempts=lambda step: 1,
    ),
    FaultKind(
        "transient_then_success",
        lambda step: {"times": 1, **TRANSIENT},
        SagaState.SUCCEEDED,
        action_attempts=lambda step: 2,
    ),
    # exactly as many failures as the step has attempts: the undos that follow (a drop step's
    # statement is also an earlier step's undo) find the cluster healthy again
    FaultKind(
        "transient_exhausted",
        lambda step: {"times": attempts_allowed(step), **TRANSIENT},
        SagaState.COMPENSATED,
        FailureKind.STEP_FAILED,
        action_attempts=attempts_allowed,
    ),
    FaultKind(
        "step_timeout",
        lambda step: {"action": "stall", "seconds": step.timeout_seconds * 10},
        SagaState.COMPENSATED,
        FailureKind.TIMED_OUT,
        action_attempts=lambda step: 1,
    ),
    FaultKind(
        "engine_restarted_mid_statement",
        lambda step: {"action": "stall", "seconds": 60},
        SagaState.SUCCEEDED,
        restart_engine=True,
    ),
    FaultKind(
        "connection_dropped_mid_statement",
        lambda step: {"action": "drop"},
        SagaState.SUCCEEDED,
        action_attempts=lambda step: 1,
        sent_once=True,  # its outcome is looked up by query id
    ),
    FaultKind(
        "compensation_fails_once",
        lambda step: USER_ERROR,
        SagaState.COMPENSATED,
        FailureKind.STEP_FAILED,
        action_attempts=lambda step: 1,
        undo_failures=1,
    ),
    FaultKind(
        "compensation_fails_always",
        lambda step: USER_ERROR,
        SagaState.FAILED_NEEDS_MANUAL,
        FailureKind.STEP_FAILED,
        action_attempts=lambda step: 1,
        undo_failures=None,
    ),
]
MATRIX = [
    pytest.param(report, point, kind, id=f"{report}-{point.step}-{kind.name}")
    for report, spec in REPORTS.items()
    for point in fault_points(spec)
    for kind in FAULT_KINDS
    if kind.undo_failures == 0 or point.undo_to_break is not None
]


# --- the expectations, derived --------------------------------------------------------------------
@dataclass(frozen=True)
class Expected:
    states: list[SagaState]  # every state the saga passes through, in order
    undone: tuple[str, ...]  # steps whose undo must succeed after their last action
    stuck: str | None  # the step whose undo never succeeds
    left: Aftermath
    # a step beside the struck one that finishes once a compensation left the saga stuck undoes
    # itself, and the stuck undo is tried again: the compensation may repeat
    may_compensate_again: bool = False


def expected(spec: ReportSpec, point: FaultPoint, kind: FaultKind) -> Expected:
    order = spec.saga_definition().order()
    if kind.stops is None:
        executed = [(s, f) for s in order for f in spec.steps[s].action]
        return Expected([SagaState.RUNNING, kind.ends], (), None, aftermath(spec, executed, ()))
    # the struck step's statements before the struck one ran: its partial effects
    executed = [(s, f) for s in point.live for f in spec.steps[s].action]
    executed += [(point.step, f) for f in spec.steps[point.step].action[:-1]]
    stuck = point.undo_to_break if kind.undo_failures is None else None
    undone = tuple(s for s in point.to_undo if s != stuck)
    return Expected(
        [SagaState.RUNNING, kind.stops.state, SagaState.COMPENSATING, kind.ends],
        undone,
        stuck,
        aftermath(spec, executed, undone),
        may_compensate_again=bool(point.beside) and stuck is not None,
    )


def attempts_of(attempts: list[StepAttempt], step: str, kind: AttemptKind) -> list[StepAttempt]:
    return sorted((a for a in attempts if a.step == step and a.kind == kind), key=lambda a: a.id)


def assert_undone_after_its_actions(attempts: list[StepAttempt], step: str) -> None:
    last_action = attempts_of(attempts, step, AttemptKind.ACTION)[-1].id
    undone = [
        a.id
        for a in attempts_of(attempts, step, AttemptKind.COMPENSATION)
        if a.status == AttemptStatus.SUCCEEDED
    ]
    assert undone and max(undone) > last_action, f"{step} was not undone after its last action"


def assert_consistent_ledger(ledger, saga_id: str) -> None:
    saga = ledger.get_saga(saga_id)
    transitions = ledger.transitions(saga_id)
    assert transitions[0].old_state is None and transitions[-1].new_state == saga.state
    for before, after in itertools.pairwise(transitions):
        assert after.old_state == before.new_state and after.at >= before.at
    for attempt in ledger.attempts(saga_id):
        assert attempt.status != AttemptStatus.RUNNING and attempt.ended_at >= attempt.started_at
        if attempt.status == AttemptStatus.FAILED:
            assert attempt.error


def _restart_engine_mid_statement(engine: LocalTrino, pattern: str) -> None:
    def restart() -> None:
        wait_until(
            lambda: any(
                re.search(pattern, q.sql, re.IGNORECASE) and q.state.value == "RUNNING"
                for q in engine.engine.queries()
            ),
            timeout=60,
            interval=0.05,
        )
        engine.restart(down_seconds=0.5)

    threading.Thread(target=restart, daemon=True).start()


# 56 real Dagster runs, some waiting out a timeout or an undo's backoff: 5 to 11 minutes on 2 cores
@pytest.mark.slow
@pytest.mark.parametrize(("report", "point", "kind"), MATRIX)
def test_fault_matrix(
    dagster_instance,
    local_trino,
    ledger,
    test_reports_dir: Path,
    report: str,
    point: FaultPoint,
    kind: FaultKind,
) -> None:
    spec = load_reports(test_reports_dir)[report]  # as the run reads it: test-sized limits
    step = spec.steps[point.step]
    struck = statement_pattern(spec, struck_file(spec, point.step))
    local_trino.inject(Fault(pattern=struck, **kind.step_fault(step)))
    if kind.undo_failures != 0:
        assert point.undo_to_break is not None
        undo = statement_pattern(spec, spec.steps[point.undo_to_break].compensation[0])
        local_trino.inject(Fault(pattern=undo, times=kind.undo_failures, **TRANSIENT))
    if kind.restart_engine:
        _restart_engine_mid_statement(local_trino, struck)
    run = launch(dagster_instance, report)
    local_trino.engine.faults.clear()
    saga_id = saga_of(run)
    saga = ledger.get_saga(saga_id)
    want = expected(spec, point, kind)

    states = [t.new_state for t in ledger.transitions(saga_id)]
    again = states[len(want.states) :]
    assert states[: len(want.states)] == want.states
    assert again == [SagaState.COMPENSATING, kind.ends] * (len(again) // 2)
    assert not again or want.may_compensate_again, states
    compensations = 1 + len(again) // 2
    succeeded = kind.ends == SagaState.SUCCEEDED
    assert run.status == (dg.DagsterRunStatus.SUCCESS if succeeded else dg.DagsterRunStatus.FAILURE)
    assert saga.failed_step == (None if succeeded else point.step)
    attempts = ledger.attempts(saga_id)
    if kind.action_attempts is not None:
        assert len(attempts_of(attempts, point.step, AttemptKind.ACTION)) == kind.action_attempts(
            step
        )
    if succeeded:
        for name in spec.steps:  # each step's last word is its action, done
            last = max((a for a in attempts if a.step == name), key=lambda a: a.id, default=None)
            assert last is not None and (last.kind, last.status) == (
                AttemptKind.ACTION,
                AttemptStatus.SUCCEEDED,
            ), f"{name} did not end done"
    else:
        for name in point.unstarted:
            assert [a for a in attempts if a.step == name] == [], f"{name} started"
        for name in want.undone:
            assert_undone_after_its_actions(attempts, name)
        # a step running beside the struck one may have finished too: then it was undone as well
        for name in point.beside:
            if spec.steps[name].compensation and attempts_of(attempts, name, AttemptKind.ACTION):
                assert_undone_after_its_actions(attempts, name)
    if kind.undo_failures != 0:
        undos = attempts_of(attempts, point.undo_to_break or "", AttemptKind.COMPENSATION)
        statuses = [a.status for a in undos]
        assert statuses == (
            [AttemptStatus.FAILED] * COMPENSATION_RETRY.max_attempts * compensations
            if kind.undo_failures is None
            else [AttemptStatus.FAILED] * kind.undo_failures + [AttemptStatus.SUCCEEDED]
        )
    if kind.sent_once:
        submitted = [
            q
            for q in local_trino.engine.queries()
            if re.search(struck, q.sql, re.IGNORECASE)
            and saga_id.replace("-", "") in q.sql.replace("-", "")
        ]
        assert len(submitted) == 1  # looked up, never re-submitted blindly
    assert_consistent_ledger(ledger, saga_id)
    assert sorted(scratch_tables(local_trino, saga_id)) == sorted(
        scratch_table_name(saga_id, table) for table in want.left.tables
    )
    assert bool(report_rows(local_trino, report, saga_id)) == want.left.rows


# --- the derivation itself, on every report -------------------------------------------------------
@pytest.mark.parametrize("report", REPORTS)
def test_each_steps_pattern_finds_its_statement_and_nothing_sent_before_it(report: str) -> None:
    spec = REPORTS[report]
    sent = sent_in_order(spec)
    for step, pattern in step_statements(spec).items():
        struck = sent.index((step, struck_file(spec, step)))
        # as the engine receives it, quoted inside EXECUTE IMMEDIATE or not
        text = rendered(spec, struck_file(spec, step))
        quoted = text.replace("'", "''")
        for received in (text, f"EXECUTE IMMEDIATE '{quoted}'"):
            assert re.search(pattern, received, re.IGNORECASE), (step, received)
        for earlier_step, file in sent[:struck]:
            earlier = rendered(spec, file)
            assert not re.search(pattern, earlier, re.IGNORECASE), (step, earlier_step, file)
