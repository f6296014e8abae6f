"""Termination and kill -9 mid-statement, through a real webserver and daemon driven over GraphQL.

Hooks do not run in either case; the saga backstop sensor must compensate. Each case asserts the
final saga state, a consistent ledger and zero leftover scratch tables, and prints how long the
saga took to reach its terminal state.
"""

from __future__ import annotations

import os
import re
import signal
import time

import dagster as dg
import pytest

from report_pipeline.local_trino import Fault
from report_pipeline.saga import AttemptKind, AttemptStatus, RunKind, SagaState
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.conftest import BACKENDS, wait_until
from report_pipeline_tests.orchestration.conftest import (
    PARAMETERS,
    REPORTS,
    STEP_STATEMENTS,
    report_rows,
    scratch_tables,
)
from report_pipeline_tests.orchestration.holding import holdable, holding

# Every step on the local engine; on the real Trino the steps a lock can hold (holding.py).
CASES = [
    pytest.param(backend, report, step, id=f"{backend}-{report}-{step}")
    for backend in BACKENDS
    for report, steps in STEP_STATEMENTS.items()
    for step in steps
    if holdable(backend, report, step)
]
STEP_WORKER_CASES = CASES
# A killed run worker leaves its step process running: the same stop of that statement as for a
# killed step worker (covered at every step), so one step of each report, and the real Trino,
# suffice.
RUN_WORKER_CASES = [
    case
    for case in CASES
    if case.id
    in (
        "local-daily_country_report-create_summary",
        "local-weekly_engagement_report-build_purchases",
        "trino-daily_country_report-write_report",
    )
]


def assert_compensated_cleanly(ledger, backend, report: str, saga_id: str) -> None:
    saga = ledger.get_saga(saga_id)
    assert saga.state == SagaState.COMPENSATED
    attempts = ledger.attempts(saga_id)
    assert all(a.status != AttemptStatus.RUNNING for a in attempts)
    assert all(
        a.status == AttemptStatus.SUCCEEDED for a in attempts if a.kind == AttemptKind.COMPENSATION
    )
    assert [t.new_state for t in ledger.transitions(saga_id)][-2:] == [
        SagaState.COMPENSATING,
        SagaState.COMPENSATED,
    ]
    assert scratch_tables(backend, saga_id) == []
    assert report_rows(backend, report, saga_id) == []


def run_worker_pid(instance_url_stack, run_id: str) -> int:
    records = instance_url_stack.graphql(
        """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
        events { __typename ... on EngineEvent { message } } } } }""",
        {"id": run_id},
    )["logsForRun"]["events"]
    for event in records:
        match = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if match:
            return int(match.group(1))
    raise AssertionError(f"no run worker pid in the events of {run_id}")


def step_process_pid(stack, run_id: str, report: str, step: str) -> int:
    """The pid of the process running `step`: the run worker when the report runs in-process, else
    the step's own worker (from its STEP_WORKER_STARTED event)."""
    if REPORTS[report].runs_in_process():
        return run_worker_pid(stack, run_id)
    instance = dg.DagsterInstance.from_config(str(stack.home))
    found: list[str] = []

    def started() -> bool:
        records = instance.get_records_for_run(
            run_id, of_type=dg.DagsterEventType.STEP_WORKER_STARTED
        ).records
        found[:] = [  # (the pid is text metadata)
            str(record.event_log_entry.get_dagster_event().engine_event_data.metadata["pid"].value)
            for record in records
            if record.event_log_entry.step_key == step
        ]
        return bool(found)

    try:
        wait_until(started, timeout=30, interval=0.1)
    finally:
        instance.dispose()
    return int(found[0])


def launch(stack, report: str) -> str:
    return stack.launch(report, start_saga_config(PARAMETERS[report]))


@pytest.mark.parametrize(("backend", "report", "step"), CASES, indirect=["backend"])
def test_terminate_mid_statement_cancels_it_and_the_saga_is_compensated(
    dagster_stack, backend, ledger, report, step
) -> None:
    with holding(backend, report, step, seconds=120) as running:
        run_id = launch(dagster_stack, report)
        statement = running()
        terminated = time.monotonic()
        dagster_stack.terminate(run_id)
        assert statement.stopped_within(1.0), (
            "the Trino statement kept running after the run was terminated"
        )
        stopped_after = time.monotonic() - terminated
        assert dagster_stack.wait_for_run(run_id, timeout=90) == "CANCELED"
        wait_until(lambda: ledger.get_saga(run_id).state.terminal, timeout=90, interval=0.1)
        terminal_after = time.monotonic() - terminated
    states = [t.new_state for t in ledger.transitions(run_id)]
    assert SagaState.CANCELLED in states
    saga = ledger.get_saga(run_id)
    # the rule, whatever else the stop caught running: every interrupted step listed in the report's
    # order, and the first of them is the failed step
    assert step in saga.interrupted_steps
    assert list(saga.interrupted_steps) == [
        s for s in STEP_STATEMENTS[report] if s in saga.interrupted_steps
    ]
    assert saga.failed_step == saga.interrupted_steps[0]
    assert_compensated_cleanly(ledger, backend, report, run_id)
    assert [r["kind"] for r in ledger.runs(run_id)] == [RunKind.RUN, RunKind.COMPENSATION]
    print(
        f"\nterminate {backend.name} {report}/{step}: statement stopped after "
        f"{stopped_after:.2f}s, saga COMPENSATED after {terminal_after:.2f}s"
    )


@pytest.mark.parametrize(("backend", "report", "step"), STEP_WORKER_CASES, indirect=["backend"])
def test_kill_9_of_a_step_worker_stops_its_statement_before_the_undo(
    dagster_stack, backend, ledger, report, step
) -> None:
    with holding(backend, report, step, seconds=120) as running:
        run_id = launch(dagster_stack, report)
        statement = running()
        # killed once its query id is in the ledger (recorded as Trino answers the POST)
        wait_until(
            lambda: statement.query_id in {a.query_id for a in ledger.attempts(run_id)},
            interval=0.05,
        )
        killed = time.monotonic()
        os.kill(step_process_pid(dagster_stack, run_id, report, step), signal.SIGKILL)
        assert dagster_stack.wait_for_run(run_id, timeout=90) == "FAILURE"
        wait_until(lambda: ledger.get_saga(run_id).state.terminal, timeout=90, interval=0.1)
        terminal_after = time.monotonic() - killed
        assert statement.stopped_within(0.5), (
            "the killed step's statement outlived the compensation"
        )
    # the hold is let go: had the statement lived on, it would now write its table after the undo
    [killed_attempt] = [a for a in ledger.attempts(run_id) if a.query_id == statement.query_id]
    assert (killed_attempt.status, killed_attempt.error_name) == (
        AttemptStatus.FAILED,
        "USER_CANCELED",
    )
    saga = ledger.get_saga(run_id)
    assert (saga.failed_step, saga.failure_kind, saga.interrupted_steps) == (
        step,
        "crashed",
        (step,),
    )
    assert_compensated_cleanly(ledger, backend, report, run_id)
    print(
        f"\nkill -9 of the step worker {backend.name} {report}/{step}: saga COMPENSATED after "
        f"{terminal_after:.2f}s, its statement cancelled"
    )


@pytest.mark.parametrize(("backend", "report", "step"), RUN_WORKER_CASES, indirect=["backend"])
def test_kill_9_of_the_run_worker_is_compensated_and_its_orphaned_step_stopped(
    dagster_stack, backend, ledger, report, step
) -> None:
    with holding(backend, report, step, seconds=120) as running:
        run_id = launch(dagster_stack, report)
        running()
        pid = run_worker_pid(dagster_stack, run_id)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        assert dagster_stack.wait_for_run(run_id, timeout=90) == "FAILURE"
        wait_until(lambda: ledger.get_saga(run_id).state.terminal, timeout=90, interval=0.1)
        terminal_after = time.monotonic() - killed
        assert ledger.get_saga(run_id).state == SagaState.COMPENSATED
    # the orphaned step process lives on, and records that the compensation cancelled its statement
    wait_until(
        lambda: all(a.status != AttemptStatus.RUNNING for a in ledger.attempts(run_id)), timeout=60
    )
    assert_compensated_cleanly(ledger, backend, report, run_id)
    print(f"\nkill -9 {backend.name} {report}/{step}: saga COMPENSATED after {terminal_after:.2f}s")


# one report per executor: the chain runs in-process, the branching report on the multiprocess one
@pytest.mark.parametrize("report", ["daily_country_report", "weekly_engagement_report"])
def test_reexecute_from_failure_over_graphql_completes_the_report(
    dagster_stack, local_trino, ledger, report
) -> None:
    local_trino.inject(
        Fault(
            pattern=STEP_STATEMENTS[report]["write_report"],
            action="error",
            error_name="PERMISSION_DENIED",
        )
    )
    parent = launch(dagster_stack, report)
    assert dagster_stack.wait_for_run(parent) == "FAILURE"
    assert ledger.get_saga(parent).state == SagaState.COMPENSATED
    child = dagster_stack.reexecute(parent, "FROM_FAILURE")
    assert dagster_stack.wait_for_run(child) == "SUCCESS"
    saga = ledger.get_saga(parent)
    assert (saga.state, saga.generation) == (SagaState.SUCCEEDED, 2)
    assert len(report_rows(local_trino, report, parent)) > 0
    assert scratch_tables(local_trino, parent) == []
    assert [(r["run_id"], r["parent_run_id"]) for r in ledger.runs(parent)] == [
        (parent, None),
        (child, parent),
    ]


@pytest.mark.parametrize("report", ["daily_country_report", "weekly_engagement_report"])
def test_reexecute_all_replaces_the_report_rows(dagster_stack, local_trino, ledger, report) -> None:
    parent = launch(dagster_stack, report)
    assert dagster_stack.wait_for_run(parent) == "SUCCESS"
    rows = report_rows(local_trino, report, parent)
    child = dagster_stack.reexecute(parent, "ALL_STEPS")
    assert dagster_stack.wait_for_run(child) == "SUCCESS"
    assert ledger.get_saga(parent).state == SagaState.SUCCEEDED
    assert len(rows) > 0
    assert len(report_rows(local_trino, report, parent)) == len(rows)  # replaced, not doubled
    assert scratch_tables(local_trino, parent) == []


def test_backstop_ignores_sagas_whose_run_is_still_going(
    dagster_stack, local_trino, ledger
) -> None:
    pattern = STEP_STATEMENTS["daily_country_report"]["create_summary"]
    local_trino.inject(
        Fault(pattern=pattern, action="stall", seconds=3)
    )  # under the step time limit
    run_id = dagster_stack.launch(
        "daily_country_report",
        start_saga_config(PARAMETERS["daily_country_report"]),
    )
    assert dagster_stack.wait_for_run(run_id, timeout=90) == "SUCCESS"
    assert ledger.get_saga(run_id).state == SagaState.SUCCEEDED
    assert [r["kind"] for r in ledger.runs(run_id)] == [RunKind.RUN]


def test_instance_uses_the_production_settings(dagster_stack) -> None:
    instance = dg.DagsterInstance.from_config(str(dagster_stack.home))
    try:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 21600
        assert instance.run_storage.__class__.__name__ == "PostgresRunStorage"
        # a queued run (a launch, a compensation) starts within a second, not Dagster's default 5
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
        run_queue = instance.get_concurrency_config().run_queue_config
        assert run_queue is not None and run_queue.max_concurrent_runs == 10
    finally:
        instance.dispose()
