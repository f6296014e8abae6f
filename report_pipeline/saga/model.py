"""States, transitions and the shape of a saga."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from enum import StrEnum
from graphlib import CycleError, TopologicalSorter
from typing import Any, Generic, TypeVar

from report_pipeline.saga.errors import InvalidTransition


class SagaState(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # a step failed; compensation follows
    TIMED_OUT = "TIMED_OUT"  # a step ran past its limit; compensation follows
    CANCELLED = "CANCELLED"  # the run was terminated; compensation follows
    COMPENSATING = "COMPENSATING"
    COMPENSATED = "COMPENSATED"
    FAILED_NEEDS_MANUAL = "FAILED_NEEDS_MANUAL"  # a compensation kept failing: a person must act

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {SagaState.SUCCEEDED, SagaState.COMPENSATED, SagaState.FAILED_NEEDS_MANUAL}
)

_S = SagaState
ALLOWED_TRANSITIONS: dict[SagaState, frozenset[SagaState]] = {
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.TIMED_OUT, _S.CANCELLED}),
    # a failed undo (of a late completion) may come before the compensation proper
    _S.FAILED: frozenset({_S.COMPENSATING, _S.FAILED_NEEDS_MANUAL}),
    _S.TIMED_OUT: frozenset({_S.COMPENSATING, _S.FAILED_NEEDS_MANUAL}),
    _S.CANCELLED: frozenset({_S.COMPENSATING, _S.FAILED_NEEDS_MANUAL}),
    _S.COMPENSATING: frozenset({_S.COMPENSATED, _S.FAILED_NEEDS_MANUAL}),
    # a late completion after compensation, whose own undo fails
    _S.COMPENSATED: frozenset({_S.RUNNING, _S.FAILED_NEEDS_MANUAL}),
    # re-execution starts a new attempt at the whole saga; a person may retry compensation
    _S.FAILED_NEEDS_MANUAL: frozenset({_S.COMPENSATING, _S.RUNNING}),
    _S.SUCCEEDED: frozenset({_S.RUNNING}),
}


def check_transition(old: SagaState, new: SagaState) -> None:
    if new not in ALLOWED_TRANSITIONS[old]:
        raise InvalidTransition(f"saga cannot go from {old} to {new}")


class FailureKind(StrEnum):
    """Why a saga stopped running; decides the state it passes through before compensation."""

    STEP_FAILED = "step_failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CRASHED = "crashed"

    @property
    def state(self) -> SagaState:
        return {
            FailureKind.TIMED_OUT: SagaState.TIMED_OUT,
            FailureKind.CANCELLED: SagaState.CANCELLED,
        }.get(self, SagaState.FAILED)

    @classmethod
    def of_unfinished(cls, state: SagaState) -> FailureKind:
        """Why a saga its run left unfinished stopped: as its state says, else a crash."""
        return {SagaState.TIMED_OUT: cls.TIMED_OUT, SagaState.CANCELLED: cls.CANCELLED}.get(
            state, cls.CRASHED
        )


class AttemptKind(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


class AttemptStatus(StrEnum):
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class RunKind(StrEnum):
    """How a run came to drive a saga, as recorded when the run is tied to it."""

    RUN = "run"  # the run that started the saga
    REEXECUTION = "reexecution"  # a re-execution that took the saga over
    COMPENSATION = "compensation"  # a run launched only to undo the saga


class Effect(StrEnum):
    """What remains of a step's action (nothing remains: no entry, or None)."""

    LIVE = "live"  # its action succeeded and was not undone
    PARTIAL = "partial"  # an action failed or is still running since the last undo


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try, and how long to wait between tries: exponential backoff, optionally capped.
    The defaults are those of an undo, before the saga is declared FAILED_NEEDS_MANUAL."""

    max_attempts: int = 4
    initial_delay_seconds: float = 1.0
    backoff: float = 2.0
    max_delay_seconds: float | None = None

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` (1-based) failed, before the next one."""
        delay = self.initial_delay_seconds * self.backoff ** (attempt - 1)
        return delay if self.max_delay_seconds is None else min(delay, self.max_delay_seconds)


@dataclass(frozen=True)
class StepDefinition:
    name: str
    depends_on: tuple[str, ...] = ()
    compensable: bool = True  # False: nothing to undo (a cleanup step)
    created_tables: tuple[str, ...] = ()  # the tables its action creates, recorded before it runs


@dataclass(frozen=True)
class SagaDefinition:
    name: str
    steps: tuple[StepDefinition, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"saga {self.name}: step names must be unique")
        for step in self.steps:
            unknown = set(step.depends_on) - set(names)
            if unknown:
                raise ValueError(
                    f"saga {self.name}: step {step.name} depends on unknown {sorted(unknown)}"
                )
        try:
            tuple(TopologicalSorter({s.name: s.depends_on for s in self.steps}).static_order())
        except CycleError as error:
            raise ValueError(f"saga {self.name}: steps form a cycle {error.args[1]}") from None

    def step(self, name: str) -> StepDefinition:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"saga {self.name} has no step {name!r}")

    def is_chain(self) -> bool:
        """Whether no two steps may ever run side by side: each step depends on the one before it
        in `order()` (then no path can skip it, so the order is total)."""
        ordered = self.order()
        return all(
            before in self.step(after).depends_on for before, after in itertools.pairwise(ordered)
        )

    def order(self) -> list[str]:
        """The steps in an order that respects dependencies (ties broken by declaration)."""
        sorter = TopologicalSorter({s.name: s.depends_on for s in self.steps})
        sorter.prepare()
        position = {s.name: i for i, s in enumerate(self.steps)}
        ordered: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            ordered.extend(ready)
            sorter.done(*ready)
        return ordered


Details = TypeVar("Details")


@dataclass(frozen=True)
class StepResult(Generic[Details]):
    """What a step's statement did, for the ledger and the UI. `details` is the runner's own account
    (its type is the runner's): the saga engine passes it on untouched."""

    query_id: str | None = None
    rows: int | None = None
    bytes: int | None = None
    elapsed_seconds: float | None = None
    queued_seconds: float | None = None  # time the statements waited in the engine's queue
    details: Details | None = None


@dataclass(frozen=True)
class UndoAttempt:
    """One try at undoing a step, as it ended: what a compensation tells whoever watches it (the
    run's log), beside what it records in the ledger."""

    step: str
    attempt: int  # 1, 2, ... up to max_attempts
    max_attempts: int
    elapsed_seconds: float
    result: StepResult[Any] | None = None  # the undo succeeded
    error: str | None = None  # the undo failed
    error_name: str | None = None  # the engine's name for the error
    query_id: str | None = None  # the failing statement's id
    will_retry: bool = False  # the failure is transient and attempts remain
    details: Any = None  # the runner's own account of a failed undo (StepError.details)

    @property
    def succeeded(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class StatementFate:
    """How an abandoned attempt's statement ended, once it was stopped and looked up."""

    status: AttemptStatus  # SUCCEEDED (it finished before the stop) or FAILED
    error: str | None = None
    error_name: str | None = None
    rows: int | None = None


@dataclass(frozen=True)
class StepProgress:
    """How far a running step has got, as its engine last reported."""

    state: str  # the engine's own word: QUEUED, RUNNING, FINISHING...
    percent: float | None = None
    rows: int | None = None
    bytes: int | None = None
    at: dt.datetime | None = None


@dataclass(frozen=True)
class SagaRecord:
    saga_id: str
    saga_name: str
    parameters: dict[str, Any]
    state: SagaState
    created_at: dt.datetime
    updated_at: dt.datetime
    run_id: str | None = None  # the run currently driving the saga
    failure_kind: str | None = None
    failed_step: str | None = None
    error: str | None = None
    generation: int = 1
    trigger: str | None = None
    partition: str | None = None
    # steps whose statement the stop cut off, in the report's order (see SagaCoordinator.stop)
    interrupted_steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepAttempt:
    id: int
    saga_id: str
    step: str
    kind: AttemptKind
    status: AttemptStatus
    run_id: str | None
    attempt: int
    started_at: dt.datetime
    ended_at: dt.datetime | None = None
    query_id: str | None = None
    rows: int | None = None
    bytes: int | None = None
    error: str | None = None
    error_name: str | None = None
    generation: int = 1
    queued_seconds: float | None = None
    progress: StepProgress | None = None


@dataclass(frozen=True)
class Transition:
    saga_id: str
    old_state: SagaState | None
    new_state: SagaState
    at: dt.datetime
    reason: str
    run_id: str | None = None
