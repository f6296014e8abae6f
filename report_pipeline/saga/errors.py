"""How a step can fail, as the saga engine needs to know it: retry, compensate, or stop."""

from __future__ import annotations

from typing import Any


class StepError(Exception):
    """A step's action or compensation failed. `transient` failures are worth retrying."""

    transient = False

    def __init__(self, message: str, *, error_name: str | None = None, query_id: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_name = error_name
        self.query_id = query_id
        # the runner's own account of what it did before failing (as StepResult.details)
        self.details: Any = None


class TransientStepError(StepError):
    """Worth another attempt: the remote side was unavailable or short of resources."""

    transient = True


class PermanentStepError(StepError):
    """Another attempt would fail the same way (bad SQL, missing table, ...)."""


class StepTimedOut(StepError):
    """The step ran past its time limit and was stopped."""


class StepCancelled(StepError):
    """The step was stopped on request (the run was terminated)."""


class SagaFenced(Exception):
    """The saga no longer runs (it is being, or has been, compensated): the step must not start."""

    def __init__(self, saga_id: str, state: str):
        super().__init__(f"saga {saga_id} is {state}: step not started")
        self.saga_id = saga_id
        self.state = state


class InvalidTransition(Exception):
    """A state change the saga's state machine does not allow."""
