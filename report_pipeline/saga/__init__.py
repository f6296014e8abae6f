"""The saga engine: steps with an action and a compensation, explicit states, a durable ledger.

It knows nothing of Dagster or Trino: the orchestration layer calls `SagaCoordinator` and hands it
a `StepRunner` that performs the actual work.
"""

from report_pipeline.saga.coordinator import SagaCoordinator, StatementListener, StepRunner, give_up
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
    CompensationPolicy,
    FailureKind,
    SagaDefinition,
    SagaState,
    StatementFate,
    StepDefinition,
    StepProgress,
    StepResult,
)

__all__ = [
    "AttemptKind",
    "AttemptStatus",
    "CompensationPolicy",
    "FailureKind",
    "PermanentStepError",
    "SagaCoordinator",
    "SagaDefinition",
    "SagaFenced",
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
    "give_up",
]
