"""One alert per saga outcome, with what the engineer on call needs to act, as Slack or plain JSON."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from report_pipeline.saga import AttemptKind, AttemptStatus, SagaState
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
    STUCK = "stuck"  # RUNNING past the report's SLA
    RUN_FAILED_BEFORE_SAGA = "run_failed_before_saga"  # e.g. invalid parameters


_TITLES = {
    AlertKind.RUN_FAILED: "run failed, saga compensated",
    AlertKind.RUN_CANCELED: "run terminated, saga compensated",
    AlertKind.TIMED_OUT: "step timed out, saga compensated",
    AlertKind.CRASHED: "run crashed, saga compensated",
    AlertKind.FAILED_NEEDS_MANUAL: "FAILED_NEEDS_MANUAL: compensation failed, manual action needed",
    AlertKind.STUCK: "saga still running past its SLA",
    AlertKind.RUN_FAILED_BEFORE_SAGA: "run failed before its saga started",
}
_KIND_BY_FAILURE = {
    "timed_out": AlertKind.TIMED_OUT,
    "cancelled": AlertKind.RUN_CANCELED,
    "crashed": AlertKind.CRASHED,
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
    interrupted_steps: tuple[
        str, ...
    ] = ()  # the steps a stop from outside cut off (see SagaCoordinator.stop)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value, "severity": self.severity.value}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Alert:
        return cls(
            **{
                **document,
                "kind": AlertKind(document["kind"]),
                "severity": Severity(document["severity"]),
                "interrupted_steps": tuple(document.get("interrupted_steps") or ()),
            }
        )


# A saga alert's key is `<saga_id>:<generation>:<tail>`, the tail being the saga's state or STUCK:
# the sensor asks the ledger for sagas lacking that key (SqlLedger.sagas_without_alert).
STUCK_ALERT_TAIL = "STUCK"


def outcome_alert(
    saga: SagaRecord, attempts: list[StepAttempt], run_url: str | None
) -> Alert | None:
    """The alert for a saga that ended badly, or None if its outcome needs none (SUCCEEDED, running)."""
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


def stuck_alert(
    saga: SagaRecord, attempts: list[StepAttempt], run_url: str | None, sla_minutes: int
) -> Alert:
    alert = _alert(
        f"{saga.saga_id}:{saga.generation}:{STUCK_ALERT_TAIL}",
        AlertKind.STUCK,
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
    return Alert(**{**alert.__dict__, "error": detail})


def run_failure_alert(
    report: str,
    run_id: str,
    status: str,
    error: str | None,
    run_url: str,
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
        failed_step="start_saga",
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


# --- payloads ---------------------------------------------------------------------------------------

# Slack's limits on a section's text and on one of its fields (a longer one gets the message refused),
# less room for our own formatting around the value
_SECTION_CHARS, _FIELD_CHARS = 3000 - 40, 2000 - 40
# Slack's escaping for message text: with these three escaped, nothing from a saga (parameters, errors,
# names) can become a mention (<!channel>, <@U123>) or a link (<http://evil|click>) in the channel.
_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: a summary line, the facts as fields, a button to the run.

    Every value from the saga is escaped for mrkdwn; only the formatting around it is ours.
    """
    icon = ":rotating_light:" if alert.severity == Severity.CRITICAL else ":warning:"
    title = _slack_text(alert.title, _SECTION_CHARS)
    facts = [
        ("Report", alert.report),
        ("Saga", alert.saga_id or "-"),
        ("State", alert.saga_state or "-"),
        ("Trigger", alert.trigger or "-"),
        ("Partition", alert.partition or "-"),
        ("Failed step", alert.failed_step or "-"),
        ("Interrupted steps", ", ".join(alert.interrupted_steps) or "-"),
        ("Parameters", str(alert.parameters)),
        ("Compensation", alert.compensation or "-"),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} *{title}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{k}*\n{_slack_text(v, _FIELD_CHARS)}"}
                for k, v in facts
            ],
        },
    ]
    if alert.error:
        error = _slack_text(alert.error, _SECTION_CHARS)
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Error*\n```{error}```"}}
        )
    if alert.run_url:
        # a button's url is a plain URL, not mrkdwn: it cannot mention anyone and is left as it is
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open the run"},
                        "url": alert.run_url,
                    }
                ],
            }
        )
    return {
        "text": f"{icon} {title} (saga {_slack_text(alert.saga_id or '-', _FIELD_CHARS)})",
        "blocks": blocks,
    }


def _slack_text(value: str, limit: int) -> str:
    """`value` escaped for Slack mrkdwn, cut to `limit` characters without splitting an escape."""
    escaped, size = [], 0
    for char in value:
        piece = _SLACK_ESCAPES.get(char, char)
        size += len(piece)
        if size > limit:
            break
        escaped.append(piece)
    return "".join(escaped)


def json_payload(alert: Alert) -> dict[str, Any]:
    return {"type": "report_pipeline.alert", **alert.to_json()}
