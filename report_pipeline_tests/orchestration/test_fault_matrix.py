"""The fault matrix: each report x each step x each fault, run as real Dagster jobs on Postgres.

Every case asserts the saga's final state, a consistent ledger and zero leftover scratch tables.
Termination and kill -9 (which need the webserver and daemon) are in test_durability.py.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import pytest

from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.saga import AttemptKind, AttemptStatus, SagaState
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.orchestration.conftest import (
    REPORTS,
    RETRY,
    STEP_STATEMENTS,
    STEP_TIMEOUT_SECONDS,
    launch,
    report_rows,
    saga_of,
    scratch_tables,
)

# The undo statement that runs when a step fails: its own if it has one (it created nothing, so a
# stuck undo leaves no table behind), else that of the nearest step before it that has one.
UNDO_STATEMENTS = {
    "daily_country_report": {
        "create_summary": STEP_STATEMENTS["daily_country_report"]["drop_summary"],
        "write_report": r"DELETE FROM reports\.daily_country_report",
        "drop_summary": r"DELETE FROM reports\.daily_country_report",
    },
    "weekly_engagement_report": {
        "build_activity": STEP_STATEMENTS["weekly_engagement_report"]["cleanup"],
        "build_purchases": r'DROP TABLE IF EXISTS "\w+"\."scratch"\."saga_\w+_purchases"',
        "write_report": r"DELETE FROM reports\.weekly_engagement_report",
        "cleanup": r"DELETE FROM reports\.weekly_engagement_report",
    },
}
USER_ERROR = {
    "action": "error",
    "error_name": "PERMISSION_DENIED",
    "message": "Access Denied (injected)",
}
TRANSIENT = {
    "action": "error",
    "error_name": "HIVE_METASTORE_ERROR",
    "error_type": "EXTERNAL",
    "message": "metastore unavailable (injected)",
}


@dataclass(frozen=True)
class Case:
    name: str
    arrange: Callable[[LocalTrino, str, str], None]  # (engine, report, step)
    expected: SagaState
    action_attempts: int | None = None  # of the failing step, when the case fixes it
    during: Callable[[LocalTrino, str], None] | None = None


def _inject(**spec) -> Callable[[LocalTrino, str, str], None]:
    return lambda engine, report, step: engine.inject(
        Fault(pattern=STEP_STATEMENTS[report][step], **spec)
    )


def _fail_step_and_undo(times: int | None) -> Callable[[LocalTrino, str, str], None]:
    def arrange(engine: LocalTrino, report: str, step: str) -> None:
        engine.inject(Fault(pattern=STEP_STATEMENTS[report][step], **USER_ERROR))
        engine.inject(Fault(pattern=UNDO_STATEMENTS[report][step], times=times, **TRANSIENT))

    return arrange


def _restart_engine_mid_statement(engine: LocalTrino, pattern: str) -> None:
    def restart() -> None:
        wait_until(
            lambda: any(
                re.search(pattern, q.sql) and q.state.value == "RUNNING"
                for q in engine.engine.queries()
            ),
            timeout=60,
            interval=0.05,
        )
        engine.restart(down_seconds=0.5)

    threading.Thread(target=restart, daemon=True).start()


MAX_ATTEMPTS = RETRY["max_retries"] + 1
CASES = [
    Case("user_error", _inject(**USER_ERROR), SagaState.COMPENSATED, action_attempts=1),
    Case(
        "transient_then_success",
        _inject(times=1, **TRANSIENT),
        SagaState.SUCCEEDED,
        action_attempts=2,
    ),
    # exactly as many failures as the step has attempts: the undos that follow (a drop step's
    # statement is also its predecessor's undo) find the cluster healthy again
    Case(
        "transient_exhausted",
        _inject(times=MAX_ATTEMPTS, **TRANSIENT),
        SagaState.COMPENSATED,
        action_attempts=MAX_ATTEMPTS,
    ),
    Case(
        "step_timeout",
        _inject(action="stall", seconds=STEP_TIMEOUT_SECONDS * 10),
        SagaState.COMPENSATED,
        action_attempts=1,
    ),
    Case(
        "engine_restarted_mid_statement",
        _inject(action="stall", seconds=60),
        SagaState.SUCCEEDED,
        during=_restart_engine_mid_statement,
    ),
    Case(
        "connection_dropped_mid_statement",
        _inject(action="drop"),
        SagaState.SUCCEEDED,
        action_attempts=1,
    ),
    Case(
        "compensation_fails_once",
        _fail_step_and_undo(times=1),
        SagaState.COMPENSATED,
        action_attempts=1,
    ),
    Case(
        "compensation_fails_always",
        _fail_step_and_undo(times=None),
        SagaState.FAILED_NEEDS_MANUAL,
        action_attempts=1,
    ),
]
MATRIX = [
    pytest.param(report, step, case, id=f"{report}-{step}-{case.name}")
    for report, steps in STEP_STATEMENTS.items()
    for step in steps
    for case in CASES
]


def assert_consistent_ledger(ledger, saga_id: str, report: str) -> None:
    saga = ledger.get_saga(saga_id)
    transitions = ledger.transitions(saga_id)
    assert transitions[0].old_state is None and transitions[-1].new_state == saga.state
    for before, after in zip(transitions, transitions[1:]):
        assert after.old_state == before.new_state and after.at >= before.at
    attempts = ledger.attempts(saga_id)
    for attempt in attempts:
        assert attempt.status != AttemptStatus.RUNNING and attempt.ended_at >= attempt.started_at
        if attempt.status == AttemptStatus.FAILED:
            assert attempt.error
    if saga.state == SagaState.COMPENSATED:
        spec = REPORTS[report]
        for step in {a.step for a in attempts if a.kind == AttemptKind.ACTION}:
            if spec.steps[step].compensation:
                last_action = max(
                    a.id for a in attempts if a.step == step and a.kind == AttemptKind.ACTION
                )
                undone = [
                    a.id
                    for a in attempts
                    if a.step == step
                    and a.kind == AttemptKind.COMPENSATION
                    and a.status == AttemptStatus.SUCCEEDED
                ]
                assert undone and max(undone) > last_action, (
                    f"{step} was not undone after its last action"
                )


@pytest.mark.parametrize(("report", "step", "case"), MATRIX)
def test_fault_matrix(
    dagster_instance, local_trino, ledger, report: str, step: str, case: Case
) -> None:
    case.arrange(local_trino, report, step)
    if case.during:
        case.during(local_trino, STEP_STATEMENTS[report][step])
    run = launch(dagster_instance, report)
    local_trino.engine.faults.clear()
    saga_id = saga_of(run)
    saga = ledger.get_saga(saga_id)
    assert saga.state == case.expected, (
        f"saga {saga_id} ended {saga.state}, expected {case.expected}"
    )
    expected_run = (
        dg.DagsterRunStatus.SUCCESS
        if case.expected == SagaState.SUCCEEDED
        else dg.DagsterRunStatus.FAILURE
    )
    assert run.status == expected_run
    if case.expected != SagaState.SUCCEEDED:
        assert saga.failed_step == step
    if case.name == "step_timeout":
        assert SagaState.TIMED_OUT in [t.new_state for t in ledger.transitions(saga_id)]
    if case.action_attempts is not None:
        attempts = [
            a for a in ledger.attempts(saga_id) if a.step == step and a.kind == AttemptKind.ACTION
        ]
        assert len(attempts) == case.action_attempts
    if case.name == "connection_dropped_mid_statement":
        submitted = [
            q
            for q in local_trino.engine.queries()
            if re.search(STEP_STATEMENTS[report][step], q.sql)
            and saga_id.replace("-", "") in q.sql.replace("-", "")
        ]
        assert len(submitted) <= 1  # looked up, never re-submitted blindly
    assert_consistent_ledger(ledger, saga_id, report)
    assert scratch_tables(local_trino, saga_id) == []
    if case.expected == SagaState.SUCCEEDED:
        assert report_rows(local_trino, report, saga_id)
    else:
        assert (
            report_rows(local_trino, report, saga_id) == []
            or case.expected == SagaState.FAILED_NEEDS_MANUAL
        )
