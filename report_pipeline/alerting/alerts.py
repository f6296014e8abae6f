"""The alert model: one alert per saga outcome, with what the engineer on call needs to act.

How it reads in Slack or as JSON is payloads.py; queueing and posting it, outbox.py and
delivery.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from report_pipeline.orchestration.names import START_OP
from report_pipeline.saga import AttemptKind, AttemptStatus, FailureKind, SagaState
from report_pipeline.saga.model import SagaRecord, StepAttempt


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    RUN_FAILED = "run_failed"  # a step failed; the saga was compensated
    RUN_CANCELED = "run_canceled"  # the run was terminated; the saga was compensated
    TIMED_OUT = "timed_out"  # a step ran past its limit; the saga was compensated
    CRASHED = "crashed"  # the run died; the saga was compensated
    FAILED_NEEDS_MANUAL = "failed_needs_manual"
    # RUNNING longer than the report's sla_minutes. Not "stuck": that is a live saga showing no sign
    # of life (the saga_stuck_sagas metric and the SagaStuck Prometheus alert).
    OVERDUE = "overdue"
    RUN_FAILED_BEFORE_SAGA = "run_failed_before_saga"  # e.g. invalid parameters


_TITLES = {
    AlertKind.RUN_FAILED: "run failed, saga compensated",
    AlertKind.RUN_CANCELED: "run terminated, saga compensated",
    AlertKind.TIMED_OUT: "step timed out, saga compensated",
    AlertKind.CRASHED: "run crashed, saga compensated",
    AlertKind.FAILED_NEEDS_MANUAL: "FAILED_NEEDS_MANUAL: compensation failed, manual action needed",
    AlertKind.OVERDUE: "saga overdue: still RUNNING past its SLA",
    AlertKind.RUN_FAILED_BEFORE_SAGA: "run failed before its saga started",
}
# alerts queued under an earlier name of their kind still load
_RENAMED_KINDS = {"stuck": AlertKind.OVERDUE.value}
_KIND_BY_FAILURE: dict[str, AlertKind] = {  # SagaRecord.failure_kind -> kind
    FailureKind.TIMED_OUT: AlertKind.TIMED_OUT,
    FailureKind.CANCELLED: AlertKind.RUN_CANCELED,
    FailureKind.CRASHED: AlertKind.CRASHED,
}


@dataclass(frozen=True)
class Alert:
    key: str  # one alert per key, ever: the deduplication key
    kind: AlertKind
    severity: Severity
    report: str
    title: str
    saga_id: str | None
    run_id: str | None
    run_url: str | None
    saga_state: str | None
    parameters: dict[str, Any]
    trigger: str | None
    partition: str | None
    failed_step: str | None
    error: str | None
    compensation: str | None
    at: str
    # the steps a stop from outside cut off (see SagaCoordinator.stop)
    interrupted_steps: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value, "severity": self.severity.value}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Alert:
        kind = _RENAMED_KINDS.get(document["kind"], document["kind"])
        return cls(
            **{
                **document,
                "kind": AlertKind(kind),
                "severity": Severity(document["severity"]),
                "interrupted_steps": tuple(document.get("interrupted_steps") or ()),
            }
        )


# A saga alert's key is `<saga_id>:<generation>:<tail>`, the tail being the saga's state or
# OVERDUE_ALERT_TAIL: the outbox finds the sagas lacking that key (AlertOutbox.sagas_without_alert).
# The overdue tail is the word keys were written with before the kind was renamed, so that an
# overdue saga alerted then is not alerted again.
OVERDUE_ALERT_TAIL = "STUCK"


def outcome_alert(
    saga: SagaRecord, attempts: list[StepAttempt], run_url: str | None
) -> Alert | None:
    """The alert for a saga that ended badly; None if its outcome needs none (SUCCEEDED, live)."""
    if saga.state == SagaState.FAILED_NEEDS_MANUAL:
        kind, severity = AlertKind.FAILED_NEEDS_MANUAL, Severity.CRITICAL
    elif saga.state == SagaState.COMPENSATED:
        kind, severity = (
            _KIND_BY_FAILURE.get(saga.failure_kind or "", AlertKind.RUN_FAILED),
            Severity.WARNING,
        )
    else:
        return None
    return _alert(
        f"{saga.saga_id}:{saga.generation}:{saga.state.value}",
        kind,
        severity,
        saga,
        attempts,
        run_url,
    )


def overdue_alert(
    saga: SagaRecord, attempts: list[StepAttempt], run_url: str | None, sla_minutes: int
) -> Alert:
    """The alert for a saga still RUNNING more than its report's sla_minutes after its last move."""
    alert = _alert(
        f"{saga.saga_id}:{saga.generation}:{OVERDUE_ALERT_TAIL}",
        AlertKind.OVERDUE,
        Severity.WARNING,
        saga,
        attempts,
        run_url,
    )
    running = [
        a.step
        for a in attempts
        if a.status == AttemptStatus.RUNNING and a.kind == AttemptKind.ACTION
    ]
    detail = f"running for more than {sla_minutes} min" + (
        f", in step {', '.join(running)}" if running else ""
    )
    return dataclasses.replace(alert, error=detail)


def run_failure_alert(
    report: str,
    run_id: str,
    status: str,
    error: str | None,
    run_url: str | None,
    parameters: dict[str, Any],
    trigger: str | None,
) -> Alert:
    return Alert(
        key=f"run:{run_id}",
        kind=AlertKind.RUN_FAILED_BEFORE_SAGA,
        severity=Severity.WARNING,
        report=report,
        title=f"{report}: {_TITLES[AlertKind.RUN_FAILED_BEFORE_SAGA]} ({status})",
        saga_id=None,
        run_id=run_id,
        run_url=run_url,
        saga_state=None,
        parameters=parameters,
        trigger=trigger,
        partition=None,
        failed_step=START_OP,
        error=error,
        compensation="nothing to compensate",
        at=_now(),
    )


def _alert(
    key: str,
    kind: AlertKind,
    severity: Severity,
    saga: SagaRecord,
    attempts: list[StepAttempt],
    run_url: str | None,
) -> Alert:
    return Alert(
        key=key,
        kind=kind,
        severity=severity,
        report=saga.saga_name,
        title=f"{saga.saga_name}: {_TITLES[kind]}",
        saga_id=saga.saga_id,
        run_id=saga.run_id,
        run_url=run_url,
        saga_state=saga.state.value,
        parameters=saga.parameters,
        trigger=saga.trigger,
        partition=saga.partition,
        failed_step=saga.failed_step,
        error=saga.error,
        compensation=compensation_summary(attempts),
        at=_now(),
        interrupted_steps=saga.interrupted_steps,
    )


def compensation_summary(attempts: list[StepAttempt]) -> str:
    undos = [a for a in attempts if a.kind == AttemptKind.COMPENSATION]
    if not undos:
        return "nothing to undo"
    done = list(dict.fromkeys(a.step for a in undos if a.status == AttemptStatus.SUCCEEDED))
    failed = {a.step for a in undos if a.status == AttemptStatus.FAILED} - set(done)
    parts = [f"undone: {', '.join(done)}"] if done else []
    if failed:
        count = {s: sum(1 for a in undos if a.step == s) for s in failed}
        parts.append(
            "NOT undone: " + ", ".join(f"{s} ({count[s]} attempts failed)" for s in sorted(failed))
        )
    return "; ".join(parts)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
