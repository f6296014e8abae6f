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
from report_pipeline.saga import AttemptKind, AttemptStatus, SagaState
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.orchestration.conftest import PARAMETERS, STEP_STATEMENTS, report_rows, scratch_tables

CASES = [(report, step) for report, steps in STEP_STATEMENTS.items() for step in steps]


def running_statement(engine, pattern: str, timeout: float = 60):
    """The engine's query for a step's statement, once it is RUNNING."""
    found = []

    def running() -> bool:
        found[:] = [q for q in engine.engine.queries() if re.search(pattern, q.sql) and q.state.value == "RUNNING"]
        return bool(found)

    wait_until(running, timeout=timeout, interval=0.05)
    return found[0]


def assert_compensated_cleanly(ledger, engine, report: str, saga_id: str) -> None:
    saga = ledger.get_saga(saga_id)
    assert saga.state == SagaState.COMPENSATED
    attempts = ledger.attempts(saga_id)
    assert all(a.status != AttemptStatus.RUNNING for a in attempts)
    assert all(a.status == AttemptStatus.SUCCEEDED for a in attempts if a.kind == AttemptKind.COMPENSATION)
    assert [t.new_state for t in ledger.transitions(saga_id)][-2:] == [SagaState.COMPENSATING, SagaState.COMPENSATED]
    assert scratch_tables(engine, saga_id) == []
    assert report_rows(engine, report, saga_id) == []


def run_worker_pid(instance_url_stack, run_id: str) -> int:
    records = instance_url_stack.graphql("""query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection {
        events { __typename ... on EngineEvent { message } } } } }""", {"id": run_id})["logsForRun"]["events"]
    for event in records:
        match = re.search(r"Started process for run \(pid: (\d+)\)", event.get("message") or "")
        if match:
            return int(match.group(1))
    raise AssertionError(f"no run worker pid in the events of {run_id}")


def launch_and_hold(stack, engine, report: str, step: str, stall_seconds: float):
    """Launch a report whose `step` statement stalls on the engine; return the run and that statement."""
    pattern = STEP_STATEMENTS[report][step]
    engine.inject(Fault(pattern=pattern, action="stall", seconds=stall_seconds))
    run_id = stack.launch(report, {"ops": {"start_saga": {"config": PARAMETERS[report]}}})
    return run_id, running_statement(engine, pattern)


@pytest.mark.parametrize(("report", "step"), CASES)
def test_terminate_mid_statement_cancels_it_and_the_saga_is_compensated(dagster_stack, local_trino, ledger,
                                                                        report, step) -> None:
    run_id, statement = launch_and_hold(dagster_stack, local_trino, report, step, stall_seconds=120)
    terminated = time.monotonic()
    dagster_stack.terminate(run_id)
    assert statement.stopped.wait(2.0), "the Trino statement kept running after the run was terminated"
    stopped_after = time.monotonic() - terminated
    assert dagster_stack.wait_for_run(run_id, timeout=90) == "CANCELED"
    wait_until(lambda: ledger.get_saga(run_id).state.terminal, timeout=90, interval=0.1)
    terminal_after = time.monotonic() - terminated
    states = [t.new_state for t in ledger.transitions(run_id)]
    assert SagaState.CANCELLED in states
    assert ledger.get_saga(run_id).failed_step == step
    assert_compensated_cleanly(ledger, local_trino, report, run_id)
    assert [r["kind"] for r in ledger.runs(run_id)] == ["run", "compensation"]
    print(f"\nterminate {report}/{step}: statement stopped after {stopped_after:.2f}s, "
          f"saga COMPENSATED after {terminal_after:.2f}s")


@pytest.mark.parametrize(("report", "step"), CASES)
def test_kill_9_of_the_run_worker_is_compensated_and_the_late_step_fenced(dagster_stack, local_trino, ledger,
                                                                         report, step) -> None:
    run_id, statement = launch_and_hold(dagster_stack, local_trino, report, step, stall_seconds=6)
    pid = run_worker_pid(dagster_stack, run_id)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    assert dagster_stack.wait_for_run(run_id, timeout=90) == "FAILURE"
    wait_until(lambda: ledger.get_saga(run_id).state.terminal, timeout=90, interval=0.1)
    terminal_after = time.monotonic() - killed
    assert ledger.get_saga(run_id).state == SagaState.COMPENSATED
    # the orphaned step process finishes its statement after the compensation and must undo itself
    statement.stopped.wait(30)
    wait_until(lambda: all(a.status != AttemptStatus.RUNNING for a in ledger.attempts(run_id)), timeout=60)
    assert_compensated_cleanly(ledger, local_trino, report, run_id)
    print(f"\nkill -9 {report}/{step}: saga COMPENSATED after {terminal_after:.2f}s")


def test_reexecute_from_failure_over_graphql_completes_the_report(dagster_stack, local_trino, ledger) -> None:
    local_trino.inject(Fault(pattern=STEP_STATEMENTS["weekly_engagement_report"]["write_report"], action="error",
                             error_name="PERMISSION_DENIED"))
    config = {"ops": {"start_saga": {"config": PARAMETERS["weekly_engagement_report"]}}}
    parent = dagster_stack.launch("weekly_engagement_report", config)
    assert dagster_stack.wait_for_run(parent) == "FAILURE"
    assert ledger.get_saga(parent).state == SagaState.COMPENSATED
    child = dagster_stack.reexecute(parent, "FROM_FAILURE")
    assert dagster_stack.wait_for_run(child) == "SUCCESS"
    saga = ledger.get_saga(parent)
    assert (saga.state, saga.generation) == (SagaState.SUCCEEDED, 2)
    assert len(report_rows(local_trino, "weekly_engagement_report", parent)) > 0
    assert scratch_tables(local_trino, parent) == []
    assert [(r["run_id"], r["parent_run_id"]) for r in ledger.runs(parent)] == [(parent, None), (child, parent)]


def test_reexecute_all_replaces_the_report_rows(dagster_stack, local_trino, ledger) -> None:
    config = {"ops": {"start_saga": {"config": PARAMETERS["daily_country_report"]}}}
    parent = dagster_stack.launch("daily_country_report", config)
    assert dagster_stack.wait_for_run(parent) == "SUCCESS"
    child = dagster_stack.reexecute(parent, "ALL_STEPS")
    assert dagster_stack.wait_for_run(child) == "SUCCESS"
    assert ledger.get_saga(parent).state == SagaState.SUCCEEDED
    assert len(report_rows(local_trino, "daily_country_report", parent)) == 12   # replaced, not doubled
    assert scratch_tables(local_trino, parent) == []


def test_backstop_ignores_sagas_whose_run_is_still_going(dagster_stack, local_trino, ledger) -> None:
    pattern = STEP_STATEMENTS["daily_country_report"]["create_summary"]
    local_trino.inject(Fault(pattern=pattern, action="stall", seconds=3))  # under the step time limit
    run_id = dagster_stack.launch("daily_country_report",
                                  {"ops": {"start_saga": {"config": PARAMETERS["daily_country_report"]}}})
    assert dagster_stack.wait_for_run(run_id, timeout=90) == "SUCCESS"
    assert ledger.get_saga(run_id).state == SagaState.SUCCEEDED
    assert [r["kind"] for r in ledger.runs(run_id)] == ["run"]


def test_instance_uses_the_production_settings(dagster_stack) -> None:
    instance = dg.DagsterInstance.from_config(str(dagster_stack.home))
    try:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 21600
        assert instance.run_storage.__class__.__name__ == "PostgresRunStorage"
    finally:
        instance.dispose()
