"""The saga engine's rules, on the real ledger (PostgreSQL and SQLite) with a scripted runner."""

from __future__ import annotations

import pytest

from report_pipeline.saga import (
    AttemptKind,
    AttemptStatus,
    Effect,
    FailureKind,
    RetryPolicy,
    RunKind,
    SagaCoordinator,
    SagaDefinition,
    SagaFenced,
    SagaState,
    StatementFate,
    StepDefinition,
    StepError,
    give_up,
)
from report_pipeline_tests.builders import run_steps
from report_pipeline_tests.saga.conftest import (
    FAN_OUT,
    FAST,
    ScriptedRunner,
    coordinator,
    permanent,
    transient,
)


def run_saga(
    reports: SagaCoordinator, runner: ScriptedRunner, saga_id="saga-1", run_id="run-1"
) -> str | None:
    """`run_steps` with this module's saga and run: the step that failed, or None."""
    return run_steps(reports, runner, saga_id, run_id=run_id)


def states(ledger, saga_id="saga-1") -> list[str]:
    return [t.new_state.value for t in ledger.transitions(saga_id)]


def test_saga_whose_steps_all_succeed_ends_succeeded(ledger) -> None:
    runner = ScriptedRunner()
    assert run_saga(coordinator(ledger), runner) is None
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED
    assert states(ledger) == ["RUNNING", "SUCCEEDED"]
    assert runner.compensations() == []


@pytest.mark.parametrize(
    ("failing", "undone"),
    [
        ("create_temp", ["create_temp"]),
        ("write_report", ["write_report", "create_temp"]),
        ("drop_temp", ["write_report", "create_temp"]),
    ],
)
def test_failure_at_each_step_undoes_completed_steps_in_reverse(ledger, failing, undone) -> None:
    runner = ScriptedRunner(action_failures={failing: [permanent()]})
    assert run_saga(coordinator(ledger), runner) == failing
    assert runner.compensations() == undone
    saga = ledger.get_saga("saga-1")
    assert saga.state == SagaState.COMPENSATED
    assert (saga.failed_step, saga.failure_kind) == (failing, "step_failed")
    assert states(ledger) == ["RUNNING", "FAILED", "COMPENSATING", "COMPENSATED"]


@pytest.mark.parametrize(
    ("failing", "undone"),
    [
        ("left", ["left"]),
        ("right", ["right", "left"]),
        ("join", ["join", "right", "left"]),
        ("cleanup", ["join", "right", "left"]),
    ],
)
def test_fan_out_failure_at_each_step_undoes_in_reverse_completion_order(
    ledger, failing, undone
) -> None:
    runner = ScriptedRunner(action_failures={failing: [permanent()]})
    assert run_saga(coordinator(ledger, FAN_OUT), runner) == failing
    assert runner.compensations() == undone
    assert ledger.get_saga("saga-1").state == SagaState.COMPENSATED


def test_compensation_that_fails_once_is_retried_and_the_saga_is_compensated(ledger) -> None:
    runner = ScriptedRunner(
        action_failures={"drop_temp": [permanent()]},
        compensation_failures={"create_temp": [transient()]},
    )
    run_saga(coordinator(ledger), runner)
    assert ledger.get_saga("saga-1").state == SagaState.COMPENSATED
    undo_attempts = [
        (a.step, a.status) for a in ledger.attempts("saga-1") if a.kind == AttemptKind.COMPENSATION
    ]
    assert undo_attempts == [
        ("write_report", AttemptStatus.SUCCEEDED),
        ("create_temp", AttemptStatus.FAILED),
        ("create_temp", AttemptStatus.SUCCEEDED),
    ]


def test_compensation_that_always_fails_ends_in_failed_needs_manual(ledger) -> None:
    runner = ScriptedRunner(
        action_failures={"drop_temp": [permanent()]}, always_fail_compensation={"write_report"}
    )
    run_saga(coordinator(ledger), runner)
    saga = ledger.get_saga("saga-1")
    assert saga.state == SagaState.FAILED_NEEDS_MANUAL
    failed = [
        a
        for a in ledger.attempts("saga-1")
        if a.kind == AttemptKind.COMPENSATION and a.step == "write_report"
    ]
    assert len(failed) == FAST.max_attempts
    assert all(a.status == AttemptStatus.FAILED and "cannot undo" in a.error for a in failed)
    # the other undo still ran: one stuck step does not leave the rest behind
    assert "create_temp" in runner.compensations()
    assert states(ledger)[-1] == "FAILED_NEEDS_MANUAL"
    assert "write_report" in ledger.transitions("saga-1")[-1].reason


def test_permanent_compensation_error_is_not_retried(ledger) -> None:
    runner = ScriptedRunner(
        action_failures={"write_report": [permanent()]},
        compensation_failures={"create_temp": [permanent("permission denied")]},
    )
    run_saga(coordinator(ledger), runner)
    assert ledger.get_saga("saga-1").state == SagaState.FAILED_NEEDS_MANUAL
    assert runner.compensations().count("create_temp") == 1


def test_timeout_passes_through_timed_out(ledger) -> None:
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=ScriptedRunner())
    saga.start({})
    saga.execute_step("create_temp")
    saga.compensate(FailureKind.TIMED_OUT, failed_step="write_report")
    assert states(ledger) == ["RUNNING", "TIMED_OUT", "COMPENSATING", "COMPENSATED"]


def test_compensating_twice_undoes_nothing_more(ledger) -> None:
    reports = coordinator(ledger)
    runner = ScriptedRunner(action_failures={"write_report": [permanent()]})
    run_saga(reports, runner)
    before = list(runner.calls)
    saga = reports.saga("saga-1", runner=runner)
    assert saga.compensate(FailureKind.STEP_FAILED) == SagaState.COMPENSATED
    assert runner.calls == before


def test_step_does_not_start_once_compensation_began(ledger) -> None:
    reports, runner = coordinator(ledger, FAN_OUT), ScriptedRunner()
    saga = reports.saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    saga.execute_step("left")
    reports.saga("saga-1", runner=runner).compensate(FailureKind.STEP_FAILED, failed_step="right")
    with pytest.raises(SagaFenced):
        saga.execute_step("join")
    assert ("action", "join") not in runner.calls


def test_step_that_completes_after_compensation_undoes_itself(ledger) -> None:
    reports = coordinator(ledger, FAN_OUT)

    class SlowBranch(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            if step.name == "left":  # while it runs, the other branch fails and is compensated
                reports.saga("saga-1", runner=ScriptedRunner()).compensate(
                    FailureKind.STEP_FAILED, failed_step="right"
                )
            return super().run_action(step, on_statement)

    runner = SlowBranch()
    saga = reports.saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    with pytest.raises(SagaFenced):
        saga.execute_step("left")
    assert runner.compensations() == ["left"]
    assert saga.effects() == {"left": None}
    assert ledger.get_saga("saga-1").state == SagaState.COMPENSATED


def test_late_completion_whose_undo_fails_needs_manual(ledger) -> None:
    reports = coordinator(ledger, FAN_OUT)

    class SlowBranch(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            reports.saga("saga-1", runner=ScriptedRunner()).compensate(
                FailureKind.CRASHED, failed_step="right"
            )
            return super().run_action(step, on_statement)

    runner = SlowBranch(always_fail_compensation={"left"})
    saga = reports.saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    with pytest.raises(SagaFenced):
        saga.execute_step("left")
    assert ledger.get_saga("saga-1").state == SagaState.FAILED_NEEDS_MANUAL


def test_retry_of_a_failed_step_clears_its_partial_effects_first(ledger) -> None:
    runner = ScriptedRunner(action_failures={"create_temp": [transient()]})
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    with pytest.raises(StepError):
        saga.execute_step("create_temp", 1)
    saga.execute_step("create_temp", 2)
    assert runner.calls == [
        ("action", "create_temp"),
        ("compensation", "create_temp"),
        ("action", "create_temp"),
    ]
    assert ledger.get_saga("saga-1").state == SagaState.RUNNING


def test_reexecution_from_failure_restores_skipped_steps_and_completes(ledger) -> None:
    reports = coordinator(ledger)
    runner = ScriptedRunner(action_failures={"write_report": [permanent()]})
    run_saga(reports, runner)
    rerun = reports.saga("saga-1", run_id="run-2", runner=runner)
    assert rerun.effects()["create_temp"] is None  # undone by the compensation
    runner.calls.clear()
    in_run = ["write_report", "drop_temp"]  # Dagster skips create_temp
    restored = rerun.join("write_report", "run-1", in_run)
    assert restored == ["create_temp"]
    for name in in_run:
        rerun.join(name, "run-1", in_run)
        rerun.execute_step(name)
    assert runner.calls == [
        ("action", "create_temp"),
        ("action", "write_report"),
        ("action", "drop_temp"),
    ]
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED
    assert states(ledger) == [
        "RUNNING",
        "FAILED",
        "COMPENSATING",
        "COMPENSATED",
        "RUNNING",
        "SUCCEEDED",
    ]
    assert [(r["run_id"], r["parent_run_id"], r["kind"]) for r in ledger.runs("saga-1")] == [
        ("run-1", None, RunKind.RUN),
        ("run-2", "run-1", RunKind.REEXECUTION),
    ]


def test_reexecuting_all_steps_of_a_succeeded_saga_replaces_its_effects(ledger) -> None:
    reports, runner = coordinator(ledger), ScriptedRunner()
    run_saga(reports, runner)
    runner.calls.clear()
    rerun = reports.saga("saga-1", run_id="run-2", runner=runner)
    for name in reports.definition.order():
        assert rerun.join(name, "run-1", None) == []
        rerun.execute_step(name)
    # the report rows of the first run are removed before the new ones are written
    assert runner.calls == [
        ("compensation", "create_temp"),
        ("action", "create_temp"),
        ("compensation", "write_report"),
        ("action", "write_report"),
        ("action", "drop_temp"),
    ]
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED


def test_created_tables_are_recorded_before_the_step_runs(ledger) -> None:
    runner = ScriptedRunner(action_failures={"create_temp": [permanent()]})
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    with pytest.raises(StepError):
        saga.execute_step("create_temp")
    assert ledger.created_tables("saga-1") == {"scratch.saga_temp": "create_temp"}


def test_failed_attempt_records_error_name_and_query_id(ledger) -> None:
    error = permanent("Table 'x' does not exist")
    error.query_id = "20260101_000000_00001_abcde"
    runner = ScriptedRunner(action_failures={"create_temp": [error]})
    run_saga(coordinator(ledger), runner)
    attempt = ledger.attempts("saga-1")[0]
    assert (attempt.status, attempt.error_name, attempt.query_id) == (
        AttemptStatus.FAILED,
        "TABLE_NOT_FOUND",
        "20260101_000000_00001_abcde",
    )
    assert attempt.ended_at >= attempt.started_at


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ((StepDefinition("a"), StepDefinition("a")), "unique"),
        ((StepDefinition("a", depends_on=("b",)),), "unknown"),
        ((StepDefinition("a", depends_on=("b",)), StepDefinition("b", depends_on=("a",))), "cycle"),
    ],
)
def test_invalid_saga_definitions_are_rejected(steps, message) -> None:
    with pytest.raises(ValueError, match=message):
        SagaDefinition("bad", steps)


def test_reexecution_after_failed_needs_manual_carries_steps_whose_effects_stand(ledger) -> None:
    reports = coordinator(ledger)
    runner = ScriptedRunner(
        action_failures={"drop_temp": [permanent()]}, always_fail_compensation={"create_temp"}
    )
    run_saga(reports, runner)
    assert ledger.get_saga("saga-1").state == SagaState.FAILED_NEEDS_MANUAL
    runner = ScriptedRunner()
    rerun = reports.saga("saga-1", run_id="run-2", runner=runner)
    assert rerun.effects()["create_temp"] == Effect.LIVE  # its undo never succeeded
    assert rerun.join("write_report", "run-1", ["write_report", "drop_temp"]) == []
    for name in ("write_report", "drop_temp"):
        rerun.execute_step(name)
    assert ("action", "create_temp") not in runner.calls
    carried = [a for a in ledger.attempts("saga-1") if a.attempt == 0]
    assert [(a.step, a.generation) for a in carried] == [("create_temp", 2)]
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED


# --- statements left running, and which step stopped the saga -------------------------------------
def abandoned(ledger, step: str, statement_id: str | None, saga_id: str = "saga-1") -> int:
    """An action attempt whose process died mid-statement: RUNNING in the ledger, left open."""
    attempt = ledger.start_attempt(
        saga_id,
        step,
        AttemptKind.ACTION,
        "run-1",
        1,
        require_running=True,
        created_tables=[f"scratch.saga_{step}"],
    )
    if statement_id is not None:
        ledger.record_statement(attempt, statement_id)
    return attempt


def attempt_by_id(ledger, attempt_id: int, saga_id: str = "saga-1"):
    return next(a for a in ledger.attempts(saga_id) if a.id == attempt_id)


def test_each_attempt_records_its_statement_while_it_runs(ledger) -> None:
    class Peeking(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            result = super().run_action(step, on_statement)
            self.recorded = [(a.status, a.query_id) for a in ledger.attempts("saga-1")]
            return result

    runner = Peeking()
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    saga.execute_step("create_temp")
    assert runner.recorded == [(AttemptStatus.RUNNING, "q-create_temp")]


def test_compensation_stops_the_statement_of_a_dead_attempt_and_records_how_it_ended(
    ledger,
) -> None:
    reports, runner = coordinator(ledger), ScriptedRunner()
    reports.saga("saga-1", run_id="run-1", runner=runner).start({})
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    backstop = reports.saga("saga-1", run_id="backstop", runner=runner)
    assert backstop.compensate(FailureKind.CRASHED) == SagaState.COMPENSATED
    assert runner.calls == [("stop", "q-orphan"), ("compensation", "create_temp")]
    closed = attempt_by_id(ledger, attempt)
    assert (closed.status, closed.error_name, closed.ended_at is not None) == (
        AttemptStatus.FAILED,
        "USER_CANCELED",
        True,
    )


def test_a_dead_attempts_statement_that_had_finished_is_recorded_succeeded_and_undone(
    ledger,
) -> None:
    reports = coordinator(ledger)
    runner = ScriptedRunner(
        statement_fates={"q-orphan": StatementFate(AttemptStatus.SUCCEEDED, rows=7)}
    )
    reports.saga("saga-1", run_id="run-1", runner=runner).start({})
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    saga = reports.saga("saga-1", runner=runner)
    assert saga.compensate(FailureKind.CRASHED) == SagaState.COMPENSATED
    assert (attempt_by_id(ledger, attempt).status, attempt_by_id(ledger, attempt).rows) == (
        AttemptStatus.SUCCEEDED,
        7,
    )
    assert runner.compensations() == ["create_temp"]


def test_a_dead_attempt_without_a_recorded_statement_is_closed_and_undone(ledger) -> None:
    reports, runner = coordinator(ledger), ScriptedRunner()
    reports.saga("saga-1", run_id="run-1", runner=runner).start({})
    attempt = abandoned(ledger, "create_temp", None)
    saga = reports.saga("saga-1", runner=runner)
    assert saga.compensate(FailureKind.CRASHED) == SagaState.COMPENSATED
    assert [kind for kind, _ in runner.calls] == ["compensation"]
    assert attempt_by_id(ledger, attempt).status == AttemptStatus.FAILED


def test_a_statement_that_cannot_be_confirmed_stopped_is_not_undone_and_needs_manual(
    ledger,
) -> None:
    reports = coordinator(ledger)
    runner = ScriptedRunner(statement_fates={"q-orphan": transient("coordinator unreachable")})
    reports.saga("saga-1", run_id="run-1", runner=runner).start({})
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    saga = reports.saga("saga-1", runner=runner)
    assert saga.compensate(FailureKind.CRASHED) == SagaState.FAILED_NEEDS_MANUAL
    # retried, and never undone meanwhile
    assert runner.calls == [("stop", "q-orphan")] * FAST.max_attempts
    assert attempt_by_id(ledger, attempt).status == AttemptStatus.RUNNING


def test_after_a_crash_the_failed_step_is_the_one_left_running(ledger) -> None:
    reports, runner = coordinator(ledger), ScriptedRunner()
    saga = reports.saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    saga.execute_step("create_temp")
    abandoned(ledger, "write_report", "q-orphan")
    reports.saga("saga-1", runner=runner).compensate(FailureKind.CRASHED)
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("write_report", ("write_report",))


def test_a_stopped_run_fails_the_first_interrupted_step_in_report_order_and_lists_them_all(
    ledger,
) -> None:
    saga = coordinator(ledger, FAN_OUT).saga("saga-1", run_id="run-1", runner=ScriptedRunner())
    saga.start({})
    abandoned(ledger, "left", "q-left")  # its op has not seen the interrupt yet
    saga.stop(FailureKind.CANCELLED, interrupted=["right"])
    record = ledger.get_saga("saga-1")
    assert (record.state, record.failed_step, record.interrupted_steps) == (
        SagaState.CANCELLED,
        "left",
        ("left", "right"),
    )


def test_a_later_stop_of_the_same_run_adds_its_step_and_follows_the_rule(ledger) -> None:
    saga = coordinator(ledger, FAN_OUT).saga("saga-1", run_id="run-1", runner=ScriptedRunner())
    saga.start({})
    saga.stop(FailureKind.CANCELLED, interrupted=["right"])
    saga.stop(FailureKind.CANCELLED, interrupted=["left"])
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("left", ("left", "right"))


def test_a_step_failing_on_its_own_stays_the_failed_step_while_its_running_sibling_is_interrupted(
    ledger,
) -> None:
    runner = ScriptedRunner()
    saga = coordinator(ledger, FAN_OUT).saga("saga-1", run_id="run-1", runner=runner)
    saga.start({})
    abandoned(ledger, "left", "q-left")
    saga.compensate(FailureKind.STEP_FAILED, failed_step="right")
    saga.stop(FailureKind.CANCELLED, interrupted=["left"])  # the sibling's op, later
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("right", ("left",))
    assert ("stop", "q-left") in runner.calls


def test_giving_up_hands_an_unfinished_saga_to_a_person(ledger) -> None:
    coordinator(ledger).saga("saga-1", run_id="run-1", runner=ScriptedRunner()).start({})
    assert give_up(ledger, "saga-1", "3 compensation runs ended") == SagaState.FAILED
    assert states(ledger)[-2:] == ["FAILED", "FAILED_NEEDS_MANUAL"]
    assert give_up(ledger, "saga-1", "again") is None  # ended: nothing changes


def test_a_run_gives_up_on_its_saga_through_its_handle(ledger) -> None:
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=ScriptedRunner())
    saga.start({})
    assert saga.give_up("the undo keeps failing") == SagaState.FAILED
    last = ledger.transitions("saga-1")[-1]
    assert (last.new_state, last.run_id) == (SagaState.FAILED_NEEDS_MANUAL, "run-1")


def test_retry_delays_grow_by_the_backoff_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay_seconds=0.5, backoff=3.0)
    assert [policy.delay(attempt) for attempt in (1, 2, 3)] == [0.5, 1.5, 4.5]
    capped = RetryPolicy(initial_delay_seconds=0.5, backoff=3.0, max_delay_seconds=2.0)
    assert [capped.delay(attempt) for attempt in (1, 2, 3)] == [0.5, 1.5, 2.0]
