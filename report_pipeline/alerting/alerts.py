"""The alert model: one alert per saga outcome, with what the engineer on call needs to act.

How it reads in Slack or as JSON is payloads.py; queueing and posting it, outbox.py and
delivery.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from report_pipeline.observability import links
from report_pipeline.orchestration.names import START_OP
from report_pipeline.saga import AttemptKind, AttemptStatus, FailureKind, RunKind, SagaState
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
class AlertLinks:
    """Where the engineer on call goes from an alert; None where there is no such place."""

    run: str | None = None  # the saga's run (or the run that failed) in the Dagster UI
    compensation_run: str | None = None  # the compensate_saga run that undid the saga, if any
    dashboard: str | None = None  # the Grafana dashboard, filtered to the saga and its report
    logs: str | None = None  # the saga's log lines: Grafana Explore on Loki

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> AlertLinks:
        return cls(**{name: document.get(name) for name in _LINK_NAMES})


_LINK_NAMES = tuple(field.name for field in dataclasses.fields(AlertLinks))


@dataclass(frozen=True)
class LinkTargets:
    """The UIs an alert links into, as base URLs: the Dagster UI and Grafana (with Loki)."""

    dagster_ui_url: str
    grafana_url: str

    def for_run(self, run_id: str | None) -> AlertLinks:
        """A run that failed before its saga started: there is only the run to see."""
        return AlertLinks(run=self._run(run_id))

    def for_saga(self, saga: SagaRecord, runs: Iterable[Mapping[str, Any]]) -> AlertLinks:
        """A saga's links; `runs` are the runs the ledger tied to it, oldest first
        (SqlLedger.runs_of)."""
        return AlertLinks(
            run=self._run(saga.run_id),
            compensation_run=self._run(compensation_run_id(runs)),
            dashboard=links.dashboard_url(
                self.grafana_url, saga_id=saga.saga_id, report=saga.saga_name
            ),
            logs=links.saga_logs_url(self.grafana_url, saga.saga_id, saga.created_at),
        )

    def _run(self, run_id: str | None) -> str | None:
        return links.run_url(self.dagster_ui_url, run_id) if run_id else None


def compensation_run_id(runs: Iterable[Mapping[str, Any]]) -> str | None:
    """The compensate_saga run of the saga's latest execution: the last one tied to the saga after
    its run or re-execution, if any (`runs` oldest first)."""
    found = None
    for run in runs:
        found = run["run_id"] if run["kind"] == RunKind.COMPENSATION else None
    return found


@dataclass(frozen=True)
class Alert:
    key: str  # one alert per key, ever: the deduplication key
    kind: AlertKind
    severity: Severity
    report: str
    title: str
    saga_id: str | None
    run_id: str | None
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
    links: AlertLinks = AlertLinks()

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "kind": self.kind.value,
            "severity": self.severity.value,
            # the run's link as the format had it before `links`: receivers written then still work
            "run_url": self.links.run,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Alert:
        kind = _RENAMED_KINDS.get(document["kind"], document["kind"])
        fields = {k: v for k, v in document.items() if k not in _FORMER_FIELDS}
        return cls(
            **{
                **fields,
                "kind": AlertKind(kind),
                "severity": Severity(document["severity"]),
                "interrupted_steps": tuple(document.get("interrupted_steps") or ()),
                # alerts queued before links existed had the run's link alone, as run_url
                "links": AlertLinks.from_json(
                    document.get("links") or {"run": document.get("run_url")}
                ),
            }
        )


# fields of alerts queued by earlier versions, read into today's (see Alert.from_json)
_FORMER_FIELDS = {"run_url"}


# A saga alert's key is `<saga_id>:<generation>:<tail>`, the tail being the saga's state or
# OVERDUE_ALERT_TAIL: the outbox finds the sagas lacking that key (AlertOutbox.sagas_without_alert).
# The overdue tail is the word keys were written with before the kind was renamed, so that an
# overdue saga alerted then is not alerted again.
OVERDUE_ALERT_TAIL = "STUCK"


def outcome_alert(
    saga: SagaRecord, attempts: list[StepAttempt], alert_links: AlertLinks
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
        alert_links,
    )


def overdue_alert(
    saga: SagaRecord, attempts: list[StepAttempt], alert_links: AlertLinks, sla_minutes: int
) -> Alert:
    """The alert for a saga still RUNNING more than its report's sla_minutes after its last move."""
    alert = _alert(
        f"{saga.saga_id}:{saga.generation}:{OVERDUE_ALERT_TAIL}",
        AlertKind.OVERDUE,
        Severity.WARNING,
        saga,
        attempts,
        alert_links,
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
    alert_links: AlertLinks,
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
        saga_state=None,
        parameters=parameters,
        trigger=trigger,
        partition=None,
        failed_step=START_OP,
        error=error,
        compensation="nothing to compensate",
        at=_now(),
        links=alert_links,
    )


def _alert(
    key: str,
    kind: AlertKind,
    severity: Severity,
    saga: SagaRecord,
    attempts: list[StepAttempt],
    alert_links: AlertLinks,
) -> Alert:
    return Alert(
        key=key,
        kind=kind,
        severity=severity,
        report=saga.saga_name,
        title=f"{saga.saga_name}: {_TITLES[kind]}",
        saga_id=saga.saga_id,
        run_id=saga.run_id,
        saga_state=saga.state.value,
        parameters=saga.parameters,
        trigger=saga.trigger,
        partition=saga.partition,
        failed_step=saga.failed_step,
        error=saga.error,
        compensation=compensation_summary(attempts),
        at=_now(),
        interrupted_steps=saga.interrupted_steps,
        links=alert_links,
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
