"""Which alerts are owed, and posting the due ones to the webhook, with retries.

Each tick of `saga_alert_sensor` (orchestration/alerting.py, the Dagster side) (1) queues an alert
for every saga that ended COMPENSATED or FAILED_NEEDS_MANUAL, every saga RUNNING past its report's
SLA (overdue), and every report run that failed before its saga started, each under a key that makes
it exactly once (the queue is the outbox, in the ledger's database, so a daemon restart repeats
nothing); then (2) posts every due alert. A failed post is retried on later ticks with exponential
backoff. Without a webhook the alert is written to the log instead.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from report_pipeline.alerting.alerts import (
    OVERDUE_ALERT_TAIL,
    Alert,
    LinkTargets,
    outcome_alert,
    overdue_alert,
    run_failure_alert,
)
from report_pipeline.alerting.outbox import AlertOutbox
from report_pipeline.alerting.webhook import DELIVERY_DEADLINE_SECONDS, DeliveryError, post_alert
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import RetryPolicy, SagaState
from report_pipeline.storage.datetimes import as_utc, utc_now

LOOKBACK = dt.timedelta(days=1)  # outcomes older than this when alerting starts are history
# 8 posts per alert, the next one 2 s after the first failure, then 4 s, 8 s... (at most 10 min)
DELIVERY_RETRY = RetryPolicy(
    max_attempts=8, initial_delay_seconds=2.0, backoff=2.0, max_delay_seconds=600
)
# Posting stops in time for the tick to end well inside Dagster's sensor time limit (60 s), however
# many alerts are due and however slowly the webhook answers (each post may take up to its
# deadline).
DELIVERY_BUDGET_SECONDS = 40
log = structlog.get_logger("report_pipeline.alerts")


@dataclass(frozen=True)
class Webhook:
    url: str  # a secret: never logged
    format: str = "slack"  # a payloads.FORMATS key


@dataclass(frozen=True)
class FailedRun:
    """A report's run that failed or was cancelled, as the orchestrator recorded it."""

    report: str
    run_id: str
    saga_id: str  # the saga it drives or would have driven: its root run's id
    status: str
    parameters: dict[str, Any]  # its launch parameters (the start_saga op's config)
    trigger: str | None


def queue_saga_alerts(
    ledger: SqlLedger,
    outbox: AlertOutbox,
    sla_minutes: Mapping[str, int],
    targets: LinkTargets,
    now: dt.datetime,
) -> int:
    """Queue an alert for each saga that ended badly, and for each saga of a report in `sla_minutes`
    RUNNING past its SLA, each with its links into `targets`; how many were new. The outbox selects
    only the sagas still owed an alert, page by page, so no backlog is ever cut off."""
    queued = 0
    for page in outbox.sagas_without_alert(
        (SagaState.COMPENSATED, SagaState.FAILED_NEEDS_MANUAL), updated_after=now - LOOKBACK
    ):
        runs = ledger.runs_of([saga.saga_id for saga in page])  # one query a page
        for saga in page:
            alert_links = targets.for_saga(saga, runs[saga.saga_id])
            alert = outcome_alert(saga, ledger.attempts(saga.saga_id), alert_links)
            queued += _queue(outbox, alert)
    shortest_sla = min(sla_minutes.values(), default=None)
    if shortest_sla is None:
        return queued
    for page in outbox.sagas_without_alert(
        (SagaState.RUNNING,),
        alert_tail=OVERDUE_ALERT_TAIL,
        updated_before=now - dt.timedelta(minutes=shortest_sla),
    ):
        overdue = [
            saga
            for saga in page
            if (sla := sla_minutes.get(saga.saga_name)) is not None
            and as_utc(saga.updated_at) < now - dt.timedelta(minutes=sla)
        ]
        runs = ledger.runs_of([saga.saga_id for saga in overdue]) if overdue else {}
        for saga in overdue:
            attempts = ledger.attempts(saga.saga_id)
            alert_links = targets.for_saga(saga, runs[saga.saga_id])
            alert = overdue_alert(saga, attempts, alert_links, sla_minutes[saga.saga_name])
            queued += _queue(outbox, alert)
    return queued


def queue_run_failure_alerts(
    ledger: SqlLedger,
    outbox: AlertOutbox,
    runs: Iterable[FailedRun],
    failure_message: Callable[[str], str | None],
    targets: LinkTargets,
) -> int:
    """Queue an alert for each failed run whose saga never started (its only link: the run); how
    many were new. `failure_message` reads a run's error (asked only for those runs)."""
    queued = 0
    for run in runs:
        if ledger.get_saga(run.saga_id) is not None:
            continue  # its saga's own outcome alerts
        alert = run_failure_alert(
            run.report,
            run.run_id,
            run.status,
            failure_message(run.run_id),
            targets.for_run(run.run_id),
            run.parameters,
            run.trigger,
        )
        queued += _queue(outbox, alert)
    return queued


def _queue(outbox: AlertOutbox, alert: Alert | None) -> int:
    return int(alert is not None and outbox.queue(alert))


def deliver_alerts(
    outbox: AlertOutbox,
    webhook: Webhook | None,
    now: dt.datetime | None = None,
    budget_seconds: float = DELIVERY_BUDGET_SECONDS,
) -> dict[str, int]:
    """Post every due alert once (log it, without a webhook); failures are rescheduled with
    backoff, then given up on. A post is started only while a whole attempt still fits in the
    tick's budget; the rest wait for the next tick. How many alerts went each way."""
    now = now or utc_now()
    counts = {"delivered": 0, "logged": 0, "retrying": 0, "failed": 0, "deferred": 0}
    ends = time.monotonic() + budget_seconds
    for queued in outbox.due(now):
        if webhook is not None and time.monotonic() + DELIVERY_DEADLINE_SECONDS > ends:
            counts["deferred"] += 1
            continue
        alert, attempts = queued.alert, queued.attempts + 1
        if webhook is None:
            log.warning("alert (no webhook configured)", **alert.to_json())
            outbox.mark_logged(queued.key, attempts)
            counts["logged"] += 1
            continue
        try:
            post_alert(webhook.url, alert, webhook.format)
        except DeliveryError as error:
            gave_up = attempts >= DELIVERY_RETRY.max_attempts
            retry_at = now + dt.timedelta(seconds=DELIVERY_RETRY.delay(attempts))
            outbox.mark_failed_attempt(queued.key, attempts, str(error), retry_at, gave_up)
            log.error(
                "alert delivery failed",
                alert_key=queued.key,
                attempts=attempts,
                error=str(error),
                gave_up=gave_up,
            )
            counts["failed" if gave_up else "retrying"] += 1
            continue
        outbox.mark_delivered(queued.key, attempts)
        log.info("alert delivered", alert_key=queued.key, kind=alert.kind, saga_id=alert.saga_id)
        counts["delivered"] += 1
    return counts
