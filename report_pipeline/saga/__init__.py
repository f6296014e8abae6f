"""The saga engine: steps with an action and a compensation, explicit states, a durable ledger.

It knows nothing of Dagster or Trino: the orchestration layer asks a `SagaCoordinator` for a
`SagaHandle` on one saga, binding the run and a `StepRunner` that performs the actual work.
"""

from report_pipeline.saga.coordinator import (
    SagaCoordinator,
    SagaHandle,
    StatementListener,
    StepRunner,
    UndoListener,
    give_up,
)
from report_pipeline.saga.errors import (
    PermanentStepError,
    SagaFenced,
    StepCancelled,
    StepError,
    StepTimedOut,
    TransientStepError,
)
from report_pipeline.saga.model import (
    AttemptKind,
    AttemptStatus,
    Effect,
    FailureKind,
    RetryPolicy,
    RunKind,
    SagaDefinition,
    SagaState,
    StatementFate,
    StepDefinition,
    StepProgress,
    StepResult,
    UndoAttempt,
)

__all__ = [
    "AttemptKind",
    "AttemptStatus",
    "Effect",
    "FailureKind",
    "PermanentStepError",
    "RetryPolicy",
    "RunKind",
    "SagaCoordinator",
    "SagaDefinition",
    "SagaFenced",
    "SagaHandle",
    "SagaState",
    "StatementFate",
    "StatementListener",
    "StepCancelled",
    "StepDefinition",
    "StepError",
    "StepProgress",
    "StepResult",
    "StepRunner",
    "StepTimedOut",
    "TransientStepError",
    "UndoAttempt",
    "UndoListener",
    "give_up",
]
