"""The saga's rules: fenced step execution, compensation in reverse order, re-execution.

- A step runs only while the saga is RUNNING, and records the tables it will create before it starts
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
Everything is decided from the ledger, so any process (op, hook, sensor) can pick the saga up: a
`SagaCoordinator` holds one report's rules, and `coordinator.saga(saga_id, run_id=..., runner=...)`
binds them to one saga as one run drives it (a `SagaHandle`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Collection
from typing import Any, Protocol

import structlog

from report_pipeline.saga.errors import SagaFenced, StepError
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import (
    AttemptKind,
    AttemptStatus,
    Effect,
    FailureKind,
    RetryPolicy,
    SagaDefinition,
    SagaRecord,
    SagaState,
    StatementFate,
    StepAttempt,
    StepDefinition,
    StepResult,
    UndoAttempt,
)

log = structlog.get_logger("report_pipeline.saga")  # bound to the report in each coordinator

_FAILURE_STATES = (SagaState.FAILED, SagaState.TIMED_OUT, SagaState.CANCELLED)
COMPENSATION_RETRY = RetryPolicy()  # of each undo, and each stop of a statement left running


StatementListener = Callable[[str], None]  # told each statement id as soon as the engine assigns it
UndoListener = Callable[[UndoAttempt], None]  # told how each undo attempt ended, as it ends


def give_up(
    ledger: SqlLedger, saga_id: str, reason: str, run_id: str | None = None
) -> SagaState | None:
    """Hand a saga that keeps failing to be compensated to a person (FAILED_NEEDS_MANUAL); the old
    state, or None if it had ended meanwhile. Needs no report definition: the report may be gone."""
    ledger.transition(
        saga_id,
        {SagaState.RUNNING},
        SagaState.FAILED,
        reason,
        run_id,
        failure_kind=FailureKind.CRASHED.value,
    )
    old = ledger.transition(
        saga_id,
        {*_FAILURE_STATES, SagaState.COMPENSATING},
        SagaState.FAILED_NEEDS_MANUAL,
        reason,
        run_id,
    )
    if old is not None:
        log.error(
            "saga needs manual intervention",
            saga_id=saga_id,
            run_id=run_id,
            reason=reason,
            old_state=old.value,
            new_state=SagaState.FAILED_NEEDS_MANUAL.value,
        )
    return old


class StepRunner(Protocol):
    """Performs a step's work; raises StepError subclasses to say whether a retry may help."""

    def created_tables(self, step: StepDefinition) -> list[str]:
        """The tables the step's action creates, as the ledger records them before it runs."""
        ...

    def run_action(
        self, step: StepDefinition, on_statement: StatementListener
    ) -> StepResult[Any]: ...

    def run_compensation(
        self, step: StepDefinition, on_statement: StatementListener
    ) -> StepResult[Any]: ...

    def stop_statement(self, statement_id: str) -> StatementFate:
        """Make the statement stop (if it still runs) and say how it ended; raises StepError if the
        engine cannot tell (a transient one is retried)."""
        ...


class SagaCoordinator:
    """One report's saga rules, over the ledger; `saga` binds them to one saga and run."""

    def __init__(
        self,
        ledger: SqlLedger,
        definition: SagaDefinition,
        *,
        undo_retry: RetryPolicy = COMPENSATION_RETRY,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.ledger = ledger
        self.definition = definition
        self.undo_retry = undo_retry
        self.sleep = sleep
        self.log = log.bind(report=definition.name)
        self._position = {name: index for index, name in enumerate(definition.order())}

    def saga(
        self,
        saga_id: str,
        *,
        run_id: str | None = None,
        runner: StepRunner,
        on_undo: UndoListener | None = None,
    ) -> SagaHandle:
        """The saga as run `run_id` drives it (None: outside any run); `runner` does its work,
        `on_undo` hears how each undo attempt ended (say, to show it in the run's log)."""
        return SagaHandle(self, saga_id, run_id, runner, on_undo)

    def rank(self, step: str) -> int:
        """The step's position in the report's order."""
        return self._position[step]

    def ancestors(self, step: str) -> list[str]:
        """Every step `step` depends on, directly or not."""
        seen: list[str] = []
        stack = list(self.definition.step(step).depends_on)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.append(name)
                stack.extend(self.definition.step(name).depends_on)
        return seen


class SagaHandle:
    """One saga as one run drives it, with the runner that does its steps' work: each operation
    names only what varies from call to call (a step, an attempt, why the saga stopped)."""

    def __init__(
        self,
        coordinator: SagaCoordinator,
        saga_id: str,
        run_id: str | None,
        runner: StepRunner,
        on_undo: UndoListener | None = None,
    ):
        self.saga_id = saga_id
        self.run_id = run_id
        self.runner = runner
        self._on_undo = on_undo
        self.ledger = coordinator.ledger
        self.definition = coordinator.definition
        self.log = coordinator.log.bind(saga_id=saga_id, run_id=run_id)
        self._coordinator = coordinator

    # --- starting and joining -------------------------------------------------------------------
    def start(
        self,
        parameters: dict[str, Any],
        *,
        trigger: str | None = None,
        partition: str | None = None,
    ) -> bool:
        """Begin the saga (RUNNING); False if it exists already (a retry of the first step)."""
        created = self.ledger.create_saga(
            self.saga_id,
            self.definition.name,
            parameters,
            self.run_id,
            trigger=trigger,
            partition=partition,
        )
        if created:
            self.log.info("saga transition", old_state=None, new_state=SagaState.RUNNING.value)
        return created

    def join(
        self, step: str, parent_run_id: str | None, steps_in_run: Collection[str] | None
    ) -> list[str]:
        """Prepare `step` of this run to run: take the saga over if the run re-executes it, and
        restore the ancestors the run skips whose effects were compensated (`steps_in_run` None:
        the run has every step). Returns what was restored."""
        run_id = self.run_id
        if run_id is None:
            raise ValueError(f"saga {self.saga_id}: only a run can join it")
        saga = self.ledger.get_saga(self.saga_id)
        if saga is not None and not saga.state.terminal and saga.run_id not in (None, run_id):
            # A re-execution starts only from an ended run: the one driving the saga stopped without
            # finishing it (killed, terminated). Undo that attempt before this run takes over.
            self.compensate(
                FailureKind.CRASHED,
                error=f"run {saga.run_id} ended with the saga {saga.state.value}",
            )
        old = self.ledger.begin_rerun(self.saga_id, run_id, parent_run_id)
        if old is not None:
            self.log.info(
                "saga transition",
                old_state=old.value,
                new_state=SagaState.RUNNING.value,
                reason="re-execution",
            )
        in_run = steps_in_run or [s.name for s in self.definition.steps]
        skipped = set(self._coordinator.ancestors(step)) - set(in_run)
        if not skipped:
            return []
        restored = []
        with self.ledger.exclusive(self.saga_id):
            generation = self._record().generation
            attempts = self.ledger.attempts(self.saga_id)
            effects = _effects(attempts)
            for name in self.definition.order():
                if name not in skipped or name in _succeeded_in(attempts, generation):
                    continue
                if effects.get(name) == Effect.LIVE:
                    self.ledger.record_carried(self.saga_id, name, run_id)
                else:
                    self.log.info("restoring skipped step", step=name)
                    self.execute_step(name, check_completion=False)
                    restored.append(name)
        return restored

    # --- steps ----------------------------------------------------------------------------------
    def execute_step(
        self, step_name: str, attempt: int = 1, *, check_completion: bool = True
    ) -> StepResult[Any]:
        """Run the step's action as its `attempt`-th try; ends the saga SUCCEEDED once every step's
        effects stand (unless `check_completion` is False)."""
        step = self.definition.step(step_name)
        bound = self.log.bind(step=step_name, attempt=attempt)
        if step.compensable and self.effects().get(step_name):
            # leftovers of an earlier attempt or run (partial effects, or rows of a previous report)
            bound.info("clearing earlier effects before the step runs again")
            if not self._compensate_step(step):
                raise StepError(f"could not clear earlier effects of step {step_name}")
        attempt_id = self.ledger.start_attempt(
            self.saga_id,
            step_name,
            AttemptKind.ACTION,
            self.run_id,
            attempt,
            require_running=True,
            created_tables=self.runner.created_tables(step),
        )
        bound.info("step started")
        try:
            result = self.runner.run_action(step, self._statement_recorder(attempt_id))
        except BaseException as error:
            self.ledger.finish_attempt(self.saga_id, attempt_id, AttemptStatus.FAILED, error=error)
            bound.warning(
                "step failed",
                error=str(error),
                error_name=getattr(error, "error_name", None),
                transient=getattr(error, "transient", False),
            )
            raise
        state = self.ledger.finish_attempt(
            self.saga_id, attempt_id, AttemptStatus.SUCCEEDED, result=result
        )
        bound.info("step succeeded", query_id=result.query_id, rows=result.rows)
        if state != SagaState.RUNNING:
            bound.warning(
                "step finished after compensation began: undoing it", saga_state=state.value
            )
            with self.ledger.exclusive(self.saga_id):
                if step.compensable and not self._compensate_step(step):
                    self._set_needs_manual([step_name])
            raise SagaFenced(self.saga_id, state.value)
        if check_completion:
            self._complete_if_done()
        return result

    def _complete_if_done(self) -> None:
        generation = self._record().generation
        attempts = self.ledger.attempts(self.saga_id)
        effects = _effects(attempts)
        succeeded = _succeeded_in(attempts, generation)
        if all(
            s.name in succeeded and (effects.get(s.name) == Effect.LIVE or not s.compensable)
            for s in self.definition.steps
        ):
            old = self.ledger.transition(
                self.saga_id,
                {SagaState.RUNNING},
                SagaState.SUCCEEDED,
                "all steps succeeded",
                self.run_id,
            )
            if old is not None:
                self.log.info(
                    "saga transition", old_state=old.value, new_state=SagaState.SUCCEEDED.value
                )

    # --- compensation ---------------------------------------------------------------------------
    def compensate(
        self,
        failure: FailureKind,
        *,
        failed_step: str | None = None,
        interrupted: Collection[str] = (),
        error: str | None = None,
    ) -> SagaState:
        """Stop the saga's running statements, then undo its effects in reverse order; returns the
        state it ends in."""
        self.stop(failure, failed_step=failed_step, interrupted=interrupted, error=error)
        bound = self.log.bind(failed_step=self._record().failed_step)
        with self.ledger.exclusive(self.saga_id):
            old = self.ledger.transition(
                self.saga_id,
                {*_FAILURE_STATES, SagaState.FAILED_NEEDS_MANUAL},
                SagaState.COMPENSATING,
                "compensation started",
                self.run_id,
            )
            if old is not None:
                bound.info(
                    "saga transition", old_state=old.value, new_state=SagaState.COMPENSATING.value
                )
            # a step whose statement may still run cannot be undone yet: it could write after it
            failed = self._stop_running_statements()
            for step in self._pending_compensation():
                if step.name not in failed and not self._compensate_step(step):
                    failed.append(step.name)
            if failed:
                self._set_needs_manual(failed)
            else:
                old = self.ledger.transition(
                    self.saga_id,
                    {SagaState.COMPENSATING},
                    SagaState.COMPENSATED,
                    "every completed step was undone",
                    self.run_id,
                )
                if old is not None:
                    bound.info(
                        "saga transition",
                        old_state=old.value,
                        new_state=SagaState.COMPENSATED.value,
                    )
        return self._record().state

    def compensate_unfinished(self, reason: str) -> SagaState:
        """Compensate a saga its own run left unfinished (killed, terminated): why it stopped, and
        the step that failed, are what the ledger recorded, else it crashed."""
        saga = self._record()
        return self.compensate(
            FailureKind.of_unfinished(saga.state), failed_step=saga.failed_step, error=reason
        )

    def give_up(self, reason: str) -> SagaState | None:
        """See `give_up`: the saga is handed to a person (FAILED_NEEDS_MANUAL)."""
        return give_up(self.ledger, self.saga_id, reason, self.run_id)

    def stop(
        self,
        failure: FailureKind,
        *,
        failed_step: str | None = None,
        interrupted: Collection[str] = (),
        error: str | None = None,
    ) -> None:
        """Record why a RUNNING saga stopped (FAILED, TIMED_OUT, CANCELLED); compensation is next.

        `failed_step` is a step that failed on its own; a stop from outside names none and gives
        the steps it `interrupted` instead. Steps still running in the ledger were interrupted too
        (after a crash nobody else can say so). A second stop of the same run adds its interrupted
        steps."""
        rank = self._coordinator.rank
        running = [
            a.step
            for a in self.ledger.attempts(self.saga_id)
            if a.kind == AttemptKind.ACTION and a.status == AttemptStatus.RUNNING
        ]
        cut_off = sorted((set(interrupted) | set(running)) - {failed_step}, key=rank)
        failed_step = failed_step or (cut_off[0] if cut_off else None)
        reason = f"{failed_step or 'saga'}: {failure.value}" + (f": {error}" if error else "")
        old = self.ledger.transition(
            self.saga_id,
            {SagaState.RUNNING},
            failure.state,
            reason,
            self.run_id,
            failure_kind=failure.value,
            failed_step=failed_step,
            error=error,
            interrupted_steps=cut_off or None,
        )
        if old is not None:
            self.log.info(
                "saga transition",
                failed_step=failed_step,
                interrupted_steps=cut_off,
                old_state=old.value,
                new_state=failure.state.value,
                reason=reason,
            )
        elif interrupted:
            self.ledger.merge_interrupted(self.saga_id, self.run_id, interrupted, rank)

    def _stop_running_statements(self) -> list[str]:
        """Make every statement the saga still runs stop, and close those attempts with the outcome
        the engine confirms. Returns the steps whose statement could not be confirmed stopped."""
        unconfirmed: list[str] = []
        for attempt in self.ledger.attempts(self.saga_id):
            if attempt.status != AttemptStatus.RUNNING:
                continue
            fate = self._stop_statement(attempt)
            if fate is None:
                unconfirmed.append(attempt.step)
            elif self.ledger.settle_attempt(self.saga_id, attempt.id, fate):
                self.log.warning(
                    "closed an abandoned attempt",
                    step=attempt.step,
                    kind=attempt.kind.value,
                    statement_id=attempt.query_id,
                    outcome=fate.status.value,
                    error_name=fate.error_name,
                )
        return list(dict.fromkeys(unconfirmed))

    def _stop_statement(self, attempt: StepAttempt) -> StatementFate | None:
        if attempt.query_id is None:
            # it died (or is about to submit) before the engine named its statement
            return StatementFate(
                AttemptStatus.FAILED, error="stopped before its statement was recorded"
            )
        retry = self._coordinator.undo_retry
        for number in range(1, retry.max_attempts + 1):
            try:
                return self.runner.stop_statement(attempt.query_id)
            except StepError as error:
                self.log.error(
                    "could not stop an abandoned statement",
                    step=attempt.step,
                    statement_id=attempt.query_id,
                    attempt=number,
                    error=str(error),
                )
                if not error.transient or number == retry.max_attempts:
                    return None
                self._coordinator.sleep(retry.delay(number))
        return None

    def _statement_recorder(self, attempt_id: int) -> StatementListener:
        def record(statement_id: str) -> None:
            try:
                self.ledger.record_statement(attempt_id, statement_id)
            except Exception as error:
                self.log.warning(
                    "could not record the statement id", statement_id=statement_id, error=str(error)
                )

        return record

    def _set_needs_manual(self, failed: list[str]) -> None:
        reason = f"compensation failed for {', '.join(failed)}"
        old = self.ledger.transition(
            self.saga_id,
            {SagaState.COMPENSATING, SagaState.COMPENSATED, *_FAILURE_STATES},
            SagaState.FAILED_NEEDS_MANUAL,
            reason,
            self.run_id,
        )
        self.log.error(
            "saga needs manual intervention",
            failed_steps=failed,
            old_state=old.value if old else None,
            new_state=SagaState.FAILED_NEEDS_MANUAL.value,
        )

    def _pending_compensation(self) -> list[StepDefinition]:
        """Steps with live or partial effects, the most recently active first."""
        attempts = self.ledger.attempts(self.saga_id)
        effects = _effects(attempts)
        last_activity: dict[str, int] = {}
        for attempt in attempts:
            if attempt.kind == AttemptKind.ACTION:
                last_activity[attempt.step] = attempt.id
        names = [n for n in effects if effects[n] and self.definition.step(n).compensable]
        names.sort(key=lambda n: last_activity[n], reverse=True)
        return [self.definition.step(n) for n in names]

    def _compensate_step(self, step: StepDefinition) -> bool:
        bound = self.log.bind(step=step.name)
        retry = self._coordinator.undo_retry
        for attempt in range(1, retry.max_attempts + 1):
            attempt_id = self.ledger.start_attempt(
                self.saga_id,
                step.name,
                AttemptKind.COMPENSATION,
                self.run_id,
                attempt,
                require_running=False,
            )
            started = time.monotonic()
            ended = functools.partial(UndoAttempt, step.name, attempt, retry.max_attempts)
            try:
                result = self.runner.run_compensation(step, self._statement_recorder(attempt_id))
            except Exception as error:
                self.ledger.finish_attempt(
                    self.saga_id, attempt_id, AttemptStatus.FAILED, error=error
                )
                # an error the runner did not classify may well pass: worth another try
                transient = error.transient if isinstance(error, StepError) else True
                outcome = ended(
                    time.monotonic() - started,
                    error=str(error),
                    error_name=getattr(error, "error_name", None),
                    query_id=getattr(error, "query_id", None),
                    will_retry=transient and attempt < retry.max_attempts,
                    details=getattr(error, "details", None),
                )
                bound.error(
                    "compensation failed",
                    attempt=attempt,
                    error=outcome.error,
                    error_name=outcome.error_name,
                    query_id=outcome.query_id,
                    transient=transient,
                    will_retry=outcome.will_retry,
                )
                self._tell_undo(outcome)
                if not outcome.will_retry:
                    return False
                self._coordinator.sleep(retry.delay(attempt))
                continue
            self.ledger.finish_attempt(
                self.saga_id, attempt_id, AttemptStatus.SUCCEEDED, result=result
            )
            bound.info(
                "compensation succeeded",
                attempt=attempt,
                query_id=result.query_id,
                rows=result.rows,
            )
            self._tell_undo(ended(time.monotonic() - started, result=result))
            return True
        return False

    def _tell_undo(self, outcome: UndoAttempt) -> None:
        # the ledger holds the record; whoever watches is told as a courtesy, never a reason to
        # stop undoing
        if self._on_undo is None:
            return
        try:
            self._on_undo(outcome)
        except Exception as error:
            self.log.warning(
                "could not report an undo attempt", step=outcome.step, error=str(error)
            )

    # --- derived state --------------------------------------------------------------------------
    def effects(self) -> dict[str, Effect | None]:
        """Per step that ever ran: what remains of its action (None: nothing)."""
        return _effects(self.ledger.attempts(self.saga_id))

    def _record(self) -> SagaRecord:
        saga = self.ledger.get_saga(self.saga_id)
        if saga is None:
            raise LookupError(f"saga {self.saga_id} is not in the ledger")
        return saga


def _effects(attempts: list[StepAttempt]) -> dict[str, Effect | None]:
    effects: dict[str, Effect | None] = {}
    for attempt in attempts:
        if attempt.kind == AttemptKind.ACTION:
            if attempt.status == AttemptStatus.SUCCEEDED:
                effects[attempt.step] = Effect.LIVE
            elif effects.get(attempt.step) != Effect.LIVE:
                effects[attempt.step] = Effect.PARTIAL
        elif attempt.status == AttemptStatus.SUCCEEDED:
            effects[attempt.step] = None
    return effects


def _succeeded_in(attempts: list[StepAttempt], generation: int) -> set[str]:
    return {
        a.step
        for a in attempts
        if a.kind == AttemptKind.ACTION
        and a.status == AttemptStatus.SUCCEEDED
        and a.generation == generation
    }
