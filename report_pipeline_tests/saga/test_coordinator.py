"""The saga engine's rules, against the real ledger (PostgreSQL and SQLite) and a scripted runner."""

from __future__ import annotations

import pytest

from report_pipeline.saga import (
    AttemptKind,
    AttemptStatus,
    FailureKind,
    SagaDefinition,
    SagaFenced,
    SagaState,
    StatementFate,
    StepDefinition,
    StepError,
    give_up,
)
from report_pipeline_tests.saga.conftest import (
    FAN_OUT,
    FAST,
    ScriptedRunner,
    coordinator,
    permanent,
    transient,
)


def run_saga(saga, runner, saga_id="saga-1", run_id="run-1", order=None) -> str | None:
    """Run every step in order like the orchestrator would; on failure, compensate. Returns failed step."""
    saga.start(saga_id, {"day": "2026-01-01"}, run_id)
    for name in order or saga.definition.order():
        try:
            saga.execute_step(saga_id, name, run_id, 1, runner)
        except StepError as error:
            saga.compensate(
                saga_id,
                FailureKind.STEP_FAILED,
                runner,
                run_id=run_id,
                failed_step=name,
                error=str(error),
            )
            return name
    return None


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
    saga, runner = coordinator(ledger), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    saga.execute_step("saga-1", "create_temp", "run-1", 1, runner)
    saga.compensate(
        "saga-1", FailureKind.TIMED_OUT, runner, run_id="run-1", failed_step="write_report"
    )
    assert states(ledger) == ["RUNNING", "TIMED_OUT", "COMPENSATING", "COMPENSATED"]


def test_compensating_twice_undoes_nothing_more(ledger) -> None:
    saga, runner = (
        coordinator(ledger),
        ScriptedRunner(action_failures={"write_report": [permanent()]}),
    )
    run_saga(saga, runner)
    before = list(runner.calls)
    assert saga.compensate("saga-1", FailureKind.STEP_FAILED, runner) == SagaState.COMPENSATED
    assert runner.calls == before


def test_step_does_not_start_once_compensation_began(ledger) -> None:
    saga, runner = coordinator(ledger, FAN_OUT), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    saga.execute_step("saga-1", "left", "run-1", 1, runner)
    saga.compensate("saga-1", FailureKind.STEP_FAILED, runner, failed_step="right")
    with pytest.raises(SagaFenced):
        saga.execute_step("saga-1", "join", "run-1", 1, runner)
    assert ("action", "join") not in runner.calls


def test_step_that_completes_after_compensation_undoes_itself(ledger) -> None:
    saga = coordinator(ledger, FAN_OUT)

    class SlowBranch(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            if step.name == "left":  # while it runs, the other branch fails and is compensated
                saga.compensate(
                    "saga-1", FailureKind.STEP_FAILED, ScriptedRunner(), failed_step="right"
                )
            return super().run_action(step, on_statement)

    runner = SlowBranch()
    saga.start("saga-1", {}, "run-1")
    with pytest.raises(SagaFenced):
        saga.execute_step("saga-1", "left", "run-1", 1, runner)
    assert runner.compensations() == ["left"]
    assert saga.effects("saga-1") == {"left": None}
    assert ledger.get_saga("saga-1").state == SagaState.COMPENSATED


def test_late_completion_whose_undo_fails_needs_manual(ledger) -> None:
    saga = coordinator(ledger, FAN_OUT)

    class SlowBranch(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            saga.compensate("saga-1", FailureKind.CRASHED, ScriptedRunner(), failed_step="right")
            return super().run_action(step, on_statement)

    runner = SlowBranch(always_fail_compensation={"left"})
    saga.start("saga-1", {}, "run-1")
    with pytest.raises(SagaFenced):
        saga.execute_step("saga-1", "left", "run-1", 1, runner)
    assert ledger.get_saga("saga-1").state == SagaState.FAILED_NEEDS_MANUAL


def test_retry_of_a_failed_step_clears_its_partial_effects_first(ledger) -> None:
    saga, runner = (
        coordinator(ledger),
        ScriptedRunner(action_failures={"create_temp": [transient()]}),
    )
    saga.start("saga-1", {}, "run-1")
    with pytest.raises(StepError):
        saga.execute_step("saga-1", "create_temp", "run-1", 1, runner)
    saga.execute_step("saga-1", "create_temp", "run-1", 2, runner)
    assert runner.calls == [
        ("action", "create_temp"),
        ("compensation", "create_temp"),
        ("action", "create_temp"),
    ]
    assert ledger.get_saga("saga-1").state == SagaState.RUNNING


def test_reexecution_from_failure_restores_skipped_steps_and_completes(ledger) -> None:
    saga, runner = (
        coordinator(ledger),
        ScriptedRunner(action_failures={"write_report": [permanent()]}),
    )
    run_saga(saga, runner)
    assert saga.effects("saga-1")["create_temp"] is None  # undone by the compensation
    runner.calls.clear()
    in_run = ["write_report", "drop_temp"]  # Dagster skips create_temp
    restored = saga.join("saga-1", "write_report", "run-2", "run-1", in_run, runner)
    assert restored == ["create_temp"]
    for name in in_run:
        saga.join("saga-1", name, "run-2", "run-1", in_run, runner)
        saga.execute_step("saga-1", name, "run-2", 1, runner)
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
        ("run-1", None, "run"),
        ("run-2", "run-1", "reexecution"),
    ]


def test_reexecuting_all_steps_of_a_succeeded_saga_replaces_its_effects(ledger) -> None:
    saga, runner = coordinator(ledger), ScriptedRunner()
    run_saga(saga, runner)
    runner.calls.clear()
    for name in saga.definition.order():
        assert saga.join("saga-1", name, "run-2", "run-1", None, runner) == []
        saga.execute_step("saga-1", name, "run-2", 1, runner)
    # the report rows of the first run are removed before the new ones are written
    assert runner.calls == [
        ("compensation", "create_temp"),
        ("action", "create_temp"),
        ("compensation", "write_report"),
        ("action", "write_report"),
        ("action", "drop_temp"),
    ]
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED


def test_resources_are_recorded_before_the_step_runs(ledger) -> None:
    saga = coordinator(ledger)
    runner = ScriptedRunner(action_failures={"create_temp": [permanent()]})
    saga.start("saga-1", {}, "run-1")
    with pytest.raises(StepError):
        saga.execute_step("saga-1", "create_temp", "run-1", 1, runner)
    assert ledger.resources("saga-1") == {"scratch.saga_temp": "create_temp"}


def test_failed_attempt_records_error_name_and_query_id(ledger) -> None:
    saga = coordinator(ledger)
    error = permanent("Table 'x' does not exist")
    error.query_id = "20260101_000000_00001_abcde"
    runner = ScriptedRunner(action_failures={"create_temp": [error]})
    run_saga(saga, runner)
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
    saga = coordinator(ledger)
    runner = ScriptedRunner(
        action_failures={"drop_temp": [permanent()]}, always_fail_compensation={"create_temp"}
    )
    run_saga(saga, runner)
    assert ledger.get_saga("saga-1").state == SagaState.FAILED_NEEDS_MANUAL
    assert saga.effects("saga-1")["create_temp"] == "live"  # its undo never succeeded
    runner = ScriptedRunner()
    assert (
        saga.join("saga-1", "write_report", "run-2", "run-1", ["write_report", "drop_temp"], runner)
        == []
    )
    for name in ("write_report", "drop_temp"):
        saga.execute_step("saga-1", name, "run-2", 1, runner)
    assert ("action", "create_temp") not in runner.calls
    carried = [a for a in ledger.attempts("saga-1") if a.attempt == 0]
    assert [(a.step, a.generation) for a in carried] == [("create_temp", 2)]
    assert ledger.get_saga("saga-1").state == SagaState.SUCCEEDED


# --- statements left running, and which step stopped the saga --------------------------------------
def abandoned(ledger, step: str, statement_id: str | None, saga_id: str = "saga-1") -> int:
    """An action attempt whose process died mid-statement: RUNNING in the ledger, nobody to close it."""
    attempt = ledger.start_attempt(
        saga_id,
        step,
        AttemptKind.ACTION,
        "run-1",
        1,
        require_running=True,
        resource_names=[f"scratch.saga_{step}"],
    )
    if statement_id is not None:
        ledger.record_statement(attempt, statement_id)
    return attempt


def attempt_by_id(ledger, attempt_id: int, saga_id: str = "saga-1"):
    return next(a for a in ledger.attempts(saga_id) if a.id == attempt_id)


def test_each_attempt_records_its_statement_while_it_runs(ledger) -> None:
    saga = coordinator(ledger)

    class Peeking(ScriptedRunner):
        def run_action(self, step, on_statement=None):
            result = super().run_action(step, on_statement)
            self.recorded = [(a.status, a.query_id) for a in ledger.attempts("saga-1")]
            return result

    runner = Peeking()
    saga.start("saga-1", {}, "run-1")
    saga.execute_step("saga-1", "create_temp", "run-1", 1, runner)
    assert runner.recorded == [(AttemptStatus.RUNNING, "q-create_temp")]


def test_compensation_stops_the_statement_of_a_dead_attempt_and_records_how_it_ended(
    ledger,
) -> None:
    saga, runner = coordinator(ledger), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    assert (
        saga.compensate("saga-1", FailureKind.CRASHED, runner, run_id="backstop")
        == SagaState.COMPENSATED
    )
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
    saga = coordinator(ledger)
    runner = ScriptedRunner(
        statement_fates={"q-orphan": StatementFate(AttemptStatus.SUCCEEDED, rows=7)}
    )
    saga.start("saga-1", {}, "run-1")
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    assert saga.compensate("saga-1", FailureKind.CRASHED, runner) == SagaState.COMPENSATED
    assert (attempt_by_id(ledger, attempt).status, attempt_by_id(ledger, attempt).rows) == (
        AttemptStatus.SUCCEEDED,
        7,
    )
    assert runner.compensations() == ["create_temp"]


def test_a_dead_attempt_without_a_recorded_statement_is_closed_and_undone(ledger) -> None:
    saga, runner = coordinator(ledger), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    attempt = abandoned(ledger, "create_temp", None)
    assert saga.compensate("saga-1", FailureKind.CRASHED, runner) == SagaState.COMPENSATED
    assert [kind for kind, _ in runner.calls] == ["compensation"]
    assert attempt_by_id(ledger, attempt).status == AttemptStatus.FAILED


def test_a_statement_that_cannot_be_confirmed_stopped_is_not_undone_and_needs_manual(
    ledger,
) -> None:
    saga = coordinator(ledger)
    runner = ScriptedRunner(statement_fates={"q-orphan": transient("coordinator unreachable")})
    saga.start("saga-1", {}, "run-1")
    attempt = abandoned(ledger, "create_temp", "q-orphan")
    assert saga.compensate("saga-1", FailureKind.CRASHED, runner) == SagaState.FAILED_NEEDS_MANUAL
    assert (
        runner.calls == [("stop", "q-orphan")] * FAST.max_attempts
    )  # retried, and never undone meanwhile
    assert attempt_by_id(ledger, attempt).status == AttemptStatus.RUNNING


def test_after_a_crash_the_failed_step_is_the_one_left_running(ledger) -> None:
    saga, runner = coordinator(ledger), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    saga.execute_step("saga-1", "create_temp", "run-1", 1, runner)
    abandoned(ledger, "write_report", "q-orphan")
    saga.compensate("saga-1", FailureKind.CRASHED, runner)
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("write_report", ("write_report",))


def test_a_stopped_run_fails_the_first_interrupted_step_in_report_order_and_lists_them_all(
    ledger,
) -> None:
    saga = coordinator(ledger, FAN_OUT)
    saga.start("saga-1", {}, "run-1")
    abandoned(ledger, "left", "q-left")  # its op has not seen the interrupt yet
    saga.stop("saga-1", FailureKind.CANCELLED, run_id="run-1", interrupted=["right"])
    record = ledger.get_saga("saga-1")
    assert (record.state, record.failed_step, record.interrupted_steps) == (
        SagaState.CANCELLED,
        "left",
        ("left", "right"),
    )


def test_a_later_stop_of_the_same_run_adds_its_step_and_follows_the_rule(ledger) -> None:
    saga = coordinator(ledger, FAN_OUT)
    saga.start("saga-1", {}, "run-1")
    saga.stop("saga-1", FailureKind.CANCELLED, run_id="run-1", interrupted=["right"])
    saga.stop("saga-1", FailureKind.CANCELLED, run_id="run-1", interrupted=["left"])
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("left", ("left", "right"))


def test_a_step_that_fails_on_its_own_stays_the_failed_step_while_its_running_sibling_is_interrupted(
    ledger,
) -> None:
    saga, runner = coordinator(ledger, FAN_OUT), ScriptedRunner()
    saga.start("saga-1", {}, "run-1")
    abandoned(ledger, "left", "q-left")
    saga.compensate("saga-1", FailureKind.STEP_FAILED, runner, run_id="run-1", failed_step="right")
    saga.stop(
        "saga-1", FailureKind.CANCELLED, run_id="run-1", interrupted=["left"]
    )  # the sibling's op, later
    record = ledger.get_saga("saga-1")
    assert (record.failed_step, record.interrupted_steps) == ("right", ("left",))
    assert ("stop", "q-left") in runner.calls


def test_giving_up_hands_an_unfinished_saga_to_a_person(ledger) -> None:
    coordinator(ledger).start("saga-1", {}, "run-1")
    assert give_up(ledger, "saga-1", "3 compensation runs ended") == SagaState.FAILED
    assert states(ledger)[-2:] == ["FAILED", "FAILED_NEEDS_MANUAL"]
    assert give_up(ledger, "saga-1", "again") is None  # ended: nothing changes
