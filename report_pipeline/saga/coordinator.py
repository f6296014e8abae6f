"""The saga's rules: fenced step execution, compensation in reverse order, re-execution.

- A step runs only while the saga is RUNNING, and records what it will create before it starts
  (so a compensation knows what it may remove, even after a crash mid-statement).
- A step that succeeds after compensation began undoes itself at once (late completions are fenced).
- An attempt records the statement it submits as soon as the engine names it. Compensation first
  stops every statement still running for the saga (its process may be dead, or a sibling branch)
  and closes those attempts with the statement's real outcome, so nothing runs on after the undo.
- Compensation undoes every step with live or partial effects, most recently finished first, the
  failed step's own partial effects included; each undo is retried on transient errors and recorded.
  An undo that keeps failing ends the saga in FAILED_NEEDS_MANUAL: never swallowed.
- A run that re-executes an ended saga takes it back to RUNNING and first restores the steps it
  will skip whose effects a compensation removed.
- `failed_step` is the step whose own error stopped the saga. When the saga is stopped from outside
  (its run terminated or killed), it is the first, in the report's order, of the steps whose
  statement the stop cut off; `interrupted_steps` lists them all.
Everything is decided from the ledger, so any process (op, hook, sensor) can pick the saga up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Protocol

import structlog

from report_pipeline.saga.errors import SagaFenced, StepError
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import (
    AttemptKind,
    AttemptStatus,
    CompensationPolicy,
    FailureKind,
    SagaDefinition,
    SagaState,
    StatementFate,
    StepAttempt,
    StepDefinition,
    StepResult,
)

log = structlog.get_logger("report_pipeline.saga")  # bound to the report in each coordinator

_FAILURE_STATES = (SagaState.FAILED, SagaState.TIMED_OUT, SagaState.CANCELLED)


StatementListener = Callable[[str], None]  # told each statement id as soon as the engine assigns it


def give_up(ledger: SqlLedger, saga_id: str, reason: str) -> SagaState | None:
    """Hand a saga that keeps failing to be compensated to a person (FAILED_NEEDS_MANUAL); the old
    state, or None if it had ended meanwhile. Needs no report definition: the report may be gone."""
    ledger.transition(
        saga_id,
        {SagaState.RUNNING},
        SagaState.FAILED,
        reason,
        failure_kind=FailureKind.CRASHED.value,
    )
    old = ledger.transition(
        saga_id, {*_FAILURE_STATES, SagaState.COMPENSATING}, SagaState.FAILED_NEEDS_MANUAL, reason
    )
    if old is not None:
        log.error(
            "saga needs manual intervention",
            saga_id=saga_id,
            reason=reason,
            old_state=old.value,
            new_state="FAILED_NEEDS_MANUAL",
        )
    return old


class StepRunner(Protocol):
    """Performs a step's work; raises StepError subclasses to say whether a retry may help."""

    def resources(self, step: StepDefinition) -> list[str]: ...

    def run_action(self, step: StepDefinition, on_statement: StatementListener) -> StepResult: ...

    def run_compensation(
        self, step: StepDefinition, on_statement: StatementListener
    ) -> StepResult: ...

    def stop_statement(self, statement_id: str) -> StatementFate:
        """Make the statement stop (if it still runs) and say how it ended; raises StepError if the
        engine cannot tell (a transient one is retried)."""
        ...


class SagaCoordinator:
    def __init__(
        self,
        ledger: SqlLedger,
        definition: SagaDefinition,
        *,
        policy: CompensationPolicy = CompensationPolicy(),
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.ledger = ledger
        self.definition = definition
        self.policy = policy
        self._sleep = sleep
        self.log = log.bind(report=definition.name)
        self._position = {
            name: index for index, name in enumerate(definition.order())
        }  # the report's order

    # --- starting and joining -------------------------------------------------------------------
    def start(
        self,
        saga_id: str,
        parameters: dict,
        run_id: str | None,
        *,
        trigger: str | None = None,
        partition: str | None = None,
    ) -> bool:
        """Begin a saga (RUNNING); False if it exists already (a retry of the first step)."""
        created = self.ledger.create_saga(
            saga_id, self.definition.name, parameters, run_id, trigger=trigger, partition=partition
        )
        if created:
            self.log.info(
                "saga transition",
                saga_id=saga_id,
                run_id=run_id,
                old_state=None,
                new_state="RUNNING",
            )
        return created

    def join(
        self,
        saga_id: str,
        step: str,
        run_id: str,
        parent_run_id: str | None,
        steps_in_run: Collection[str] | None,
        runner: StepRunner,
    ) -> list[str]:
        """Prepare `step` of `run_id` to run: take the saga over if this run re-executes it, and
        restore the ancestors the run skips whose effects were compensated. Returns what was restored."""
        saga = self.ledger.get_saga(saga_id)
        if saga is not None and not saga.state.terminal and saga.run_id not in (None, run_id):
            # A re-execution starts only from an ended run: the one driving the saga stopped without
            # finishing it (killed, terminated). Undo that attempt before this run takes over.
            self.compensate(
                saga_id,
                FailureKind.CRASHED,
                runner,
                run_id=run_id,
                error=f"run {saga.run_id} ended with the saga {saga.state.value}",
            )
        old = self.ledger.begin_rerun(saga_id, run_id, parent_run_id)
        if old is not None:
            self.log.info(
                "saga transition",
                saga_id=saga_id,
                run_id=run_id,
                old_state=old.value,
                new_state="RUNNING",
                reason="re-execution",
            )
        skipped = set(self._ancestors(step)) - set(steps_in_run or self._all_steps())
        if not skipped:
            return []
        restored = []
        with self.ledger.exclusive(saga_id):
            generation = self.ledger.get_saga(saga_id).generation
            attempts = self.ledger.attempts(saga_id)
            effects = self._effects(attempts)
            for name in self.definition.order():
                if name not in skipped or name in self._succeeded_in(attempts, generation):
                    continue
                if effects.get(name) == "live":
                    self.ledger.record_carried(saga_id, name, run_id)
                else:
                    self.log.info(
                        "restoring skipped step", saga_id=saga_id, run_id=run_id, step=name
                    )
                    self.execute_step(saga_id, name, run_id, 1, runner, check_completion=False)
                    restored.append(name)
        return restored

    # --- steps ----------------------------------------------------------------------------------
    def execute_step(
        self,
        saga_id: str,
        step_name: str,
        run_id: str | None,
        attempt: int,
        runner: StepRunner,
        check_completion: bool = True,
    ) -> StepResult:
        step = self.definition.step(step_name)
        bound = self.log.bind(saga_id=saga_id, run_id=run_id, step=step_name, attempt=attempt)
        if step.compensable and self._effects(self.ledger.attempts(saga_id)).get(step_name):
            # leftovers of an earlier attempt or run (partial effects, or rows of a previous report)
            bound.info("clearing earlier effects before the step runs again")
            if not self._compensate_step(saga_id, step, run_id, runner):
                raise StepError(f"could not clear earlier effects of step {step_name}")
        attempt_id = self.ledger.start_attempt(
            saga_id,
            step_name,
            AttemptKind.ACTION,
            run_id,
            attempt,
            require_running=True,
            resource_names=runner.resources(step),
        )
        bound.info("step started")
        try:
            result = runner.run_action(step, self._statement_recorder(attempt_id))
        except BaseException as error:
            self.ledger.finish_attempt(saga_id, attempt_id, AttemptStatus.FAILED, error=error)
            bound.warning(
                "step failed",
                error=str(error),
                error_name=getattr(error, "error_name", None),
                transient=getattr(error, "transient", False),
            )
            raise
        state = self.ledger.finish_attempt(
            saga_id, attempt_id, AttemptStatus.SUCCEEDED, result=result
        )
        bound.info("step succeeded", query_id=result.query_id, rows=result.rows)
        if state != SagaState.RUNNING:
            bound.warning(
                "step finished after compensation began: undoing it", saga_state=state.value
            )
            with self.ledger.exclusive(saga_id):
                if step.compensable and not self._compensate_step(saga_id, step, run_id, runner):
                    self._set_needs_manual(saga_id, run_id, [step_name])
            raise SagaFenced(saga_id, state.value)
        if check_completion:
            self._complete_if_done(saga_id, run_id)
        return result

    def _complete_if_done(self, saga_id: str, run_id: str | None) -> None:
        generation = self.ledger.get_saga(saga_id).generation
        attempts = self.ledger.attempts(saga_id)
        effects = self._effects(attempts)
        succeeded = self._succeeded_in(attempts, generation)
        if all(
            s.name in succeeded and (effects.get(s.name) == "live" or not s.compensable)
            for s in self.definition.steps
        ):
            old = self.ledger.transition(
                saga_id, {SagaState.RUNNING}, SagaState.SUCCEEDED, "all steps succeeded", run_id
            )
            if old is not None:
                self.log.info(
                    "saga transition",
                    saga_id=saga_id,
                    run_id=run_id,
                    old_state=old.value,
                    new_state="SUCCEEDED",
                )

    @staticmethod
    def _succeeded_in(attempts: list[StepAttempt], generation: int) -> set[str]:
        return {
            a.step
            for a in attempts
            if a.kind == AttemptKind.ACTION
            and a.status == AttemptStatus.SUCCEEDED
            and a.generation == generation
        }

    # --- compensation ---------------------------------------------------------------------------
    def compensate(
        self,
        saga_id: str,
        failure: FailureKind,
        runner: StepRunner,
        *,
        run_id: str | None = None,
        failed_step: str | None = None,
        interrupted: Collection[str] = (),
        error: str | None = None,
    ) -> SagaState:
        """Stop the saga's running statements, then undo its effects in reverse order; returns the
        state it ends in."""
        self.stop(
            saga_id,
            failure,
            run_id=run_id,
            failed_step=failed_step,
            interrupted=interrupted,
            error=error,
        )
        bound = self.log.bind(
            saga_id=saga_id, run_id=run_id, failed_step=self.ledger.get_saga(saga_id).failed_step
        )
        with self.ledger.exclusive(saga_id):
            old = self.ledger.transition(
                saga_id,
                {*_FAILURE_STATES, SagaState.FAILED_NEEDS_MANUAL},
                SagaState.COMPENSATING,
                "compensation started",
                run_id,
            )
            if old is not None:
                bound.info("saga transition", old_state=old.value, new_state="COMPENSATING")
            # a step whose statement may still run cannot be undone yet: it could write after the undo
            failed = self._stop_running_statements(saga_id, runner)
            for step in self._pending_compensation(saga_id):
                if step.name not in failed and not self._compensate_step(
                    saga_id, step, run_id, runner
                ):
                    failed.append(step.name)
            if failed:
                self._set_needs_manual(saga_id, run_id, failed)
            else:
                old = self.ledger.transition(
                    saga_id,
                    {SagaState.COMPENSATING},
                    SagaState.COMPENSATED,
                    "every completed step was undone",
                    run_id,
                )
                if old is not None:
                    bound.info("saga transition", old_state=old.value, new_state="COMPENSATED")
        return self.ledger.get_saga(saga_id).state

    def stop(
        self,
        saga_id: str,
        failure: FailureKind,
        *,
        run_id: str | None = None,
        failed_step: str | None = None,
        interrupted: Collection[str] = (),
        error: str | None = None,
    ) -> None:
        """Record why a RUNNING saga stopped (FAILED, TIMED_OUT, CANCELLED); compensation comes next.

        `failed_step` is a step that failed on its own; a stop from outside names none and gives the
        steps it `interrupted` instead. Steps still running in the ledger were interrupted too (after
        a crash nobody else can say so). A second stop of the same run adds its interrupted steps."""
        running = [
            a.step
            for a in self.ledger.attempts(saga_id)
            if a.kind == AttemptKind.ACTION and a.status == AttemptStatus.RUNNING
        ]
        cut_off = sorted((set(interrupted) | set(running)) - {failed_step}, key=self._rank)
        failed_step = failed_step or (cut_off[0] if cut_off else None)
        reason = f"{failed_step or 'saga'}: {failure.value}" + (f": {error}" if error else "")
        old = self.ledger.transition(
            saga_id,
            {SagaState.RUNNING},
            failure.state,
            reason,
            run_id,
            failure_kind=failure.value,
            failed_step=failed_step,
            error=error,
            interrupted_steps=cut_off or None,
        )
        if old is not None:
            self.log.info(
                "saga transition",
                saga_id=saga_id,
                run_id=run_id,
                failed_step=failed_step,
                interrupted_steps=cut_off,
                old_state=old.value,
                new_state=failure.state.value,
                reason=reason,
            )
        elif interrupted:
            self.ledger.merge_interrupted(saga_id, run_id, interrupted, self._rank)

    def _stop_running_statements(self, saga_id: str, runner: StepRunner) -> list[str]:
        """Make every statement the saga still runs stop, and close those attempts with the outcome
        the engine confirms. Returns the steps whose statement could not be confirmed stopped."""
        unconfirmed: list[str] = []
        for attempt in self.ledger.attempts(saga_id):
            if attempt.status != AttemptStatus.RUNNING:
                continue
            fate = self._stop_statement(attempt, runner)
            if fate is None:
                unconfirmed.append(attempt.step)
            elif self.ledger.settle_attempt(saga_id, attempt.id, fate):
                self.log.warning(
                    "closed an abandoned attempt",
                    saga_id=saga_id,
                    step=attempt.step,
                    kind=attempt.kind.value,
                    statement_id=attempt.query_id,
                    outcome=fate.status.value,
                    error_name=fate.error_name,
                )
        return list(dict.fromkeys(unconfirmed))

    def _stop_statement(self, attempt: StepAttempt, runner: StepRunner) -> StatementFate | None:
        if (
            attempt.query_id is None
        ):  # it died (or is about to submit) before the engine named its statement
            return StatementFate(
                AttemptStatus.FAILED, error="stopped before its statement was recorded"
            )
        for number in range(1, self.policy.max_attempts + 1):
            try:
                return runner.stop_statement(attempt.query_id)
            except StepError as error:
                self.log.error(
                    "could not stop an abandoned statement",
                    saga_id=attempt.saga_id,
                    step=attempt.step,
                    statement_id=attempt.query_id,
                    attempt=number,
                    error=str(error),
                )
                if not error.transient or number == self.policy.max_attempts:
                    return None
                self._sleep(self.policy.delay(number))
        return None

    def _statement_recorder(self, attempt_id: int) -> Callable[[str], None]:
        def record(statement_id: str) -> None:
            try:
                self.ledger.record_statement(attempt_id, statement_id)
            except Exception as error:
                self.log.warning(
                    "could not record the statement id", statement_id=statement_id, error=str(error)
                )

        return record

    def _set_needs_manual(self, saga_id: str, run_id: str | None, failed: list[str]) -> None:
        reason = f"compensation failed for {', '.join(failed)}"
        old = self.ledger.transition(
            saga_id,
            {SagaState.COMPENSATING, SagaState.COMPENSATED, *_FAILURE_STATES},
            SagaState.FAILED_NEEDS_MANUAL,
            reason,
            run_id,
        )
        self.log.error(
            "saga needs manual intervention",
            saga_id=saga_id,
            run_id=run_id,
            failed_steps=failed,
            old_state=old.value if old else None,
            new_state="FAILED_NEEDS_MANUAL",
        )

    def _pending_compensation(self, saga_id: str) -> list[StepDefinition]:
        """Steps with live or partial effects, the most recently active first."""
        attempts = self.ledger.attempts(saga_id)
        effects = self._effects(attempts)
        last_activity: dict[str, int] = {}
        for attempt in attempts:
            if attempt.kind == AttemptKind.ACTION:
                last_activity[attempt.step] = attempt.id
        names = [n for n in effects if effects[n] and self.definition.step(n).compensable]
        names.sort(key=lambda n: last_activity[n], reverse=True)
        return [self.definition.step(n) for n in names]

    def _compensate_step(
        self, saga_id: str, step: StepDefinition, run_id: str | None, runner: StepRunner
    ) -> bool:
        bound = self.log.bind(saga_id=saga_id, run_id=run_id, step=step.name)
        for attempt in range(1, self.policy.max_attempts + 1):
            attempt_id = self.ledger.start_attempt(
                saga_id, step.name, AttemptKind.COMPENSATION, run_id, attempt, require_running=False
            )
            try:
                result = runner.run_compensation(step, self._statement_recorder(attempt_id))
            except Exception as error:
                self.ledger.finish_attempt(saga_id, attempt_id, AttemptStatus.FAILED, error=error)
                transient = (
                    getattr(error, "transient", True) if isinstance(error, StepError) else True
                )
                bound.error(
                    "compensation failed", attempt=attempt, error=str(error), transient=transient
                )
                if not transient or attempt == self.policy.max_attempts:
                    return False
                self._sleep(self.policy.delay(attempt))
                continue
            self.ledger.finish_attempt(saga_id, attempt_id, AttemptStatus.SUCCEEDED, result=result)
            bound.info("compensation succeeded", attempt=attempt, query_id=result.query_id)
            return True
        return False

    # --- derived state --------------------------------------------------------------------------
    @staticmethod
    def _effects(attempts: list[StepAttempt]) -> dict[str, str | None]:
        """Per step: "live" (its action succeeded and was not undone), "partial" (an action failed
        or is still running since the last undo) or None (nothing of it remains)."""
        effects: dict[str, str | None] = {}
        for attempt in attempts:
            if attempt.kind == AttemptKind.ACTION:
                if attempt.status == AttemptStatus.SUCCEEDED:
                    effects[attempt.step] = "live"
                elif effects.get(attempt.step) != "live":
                    effects[attempt.step] = "partial"
            elif attempt.status == AttemptStatus.SUCCEEDED:
                effects[attempt.step] = None
        return effects

    def effects(self, saga_id: str) -> dict[str, str | None]:
        return self._effects(self.ledger.attempts(saga_id))

    def _ancestors(self, step: str) -> list[str]:
        seen: list[str] = []
        stack = list(self.definition.step(step).depends_on)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.append(name)
                stack.extend(self.definition.step(name).depends_on)
        return seen

    def _rank(self, step: str) -> int:
        return self._position[step]

    def _all_steps(self) -> list[str]:
        return [s.name for s in self.definition.steps]
