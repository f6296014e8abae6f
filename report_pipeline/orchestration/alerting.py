"""`saga_alert_sensor`: one alert per saga outcome, delivered to a webhook with retries.

Each tick it (1) queues an alert for every saga that ended COMPENSATED or FAILED_NEEDS_MANUAL, every
saga RUNNING past its report's SLA, and every report run that failed before its saga started, each
under a key that makes it exactly once (the queue is in the ledger, so a daemon restart repeats
nothing); then (2) posts every due alert. A failed post is retried on later ticks with exponential
backoff. Without a webhook the alert is written to the log instead. The webhook URL is a secret: it
is read from the environment at run time and never logged.
"""

import datetime as dt
import os
import time
from collections.abc import Iterator

import dagster as dg
import structlog

from report_pipeline.alerting.alerts import (
    STUCK_ALERT_TAIL,
    Alert,
    outcome_alert,
    run_failure_alert,
    stuck_alert,
)
from report_pipeline.alerting.webhook import (
    DELIVERY_DEADLINE_SECONDS,
    FORMATS,
    DeliveryError,
    post_alert,
)
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.saga import SagaState

ALERT_INTERVAL_SECONDS = 15
LOOKBACK = dt.timedelta(days=1)  # outcomes older than this when alerting starts are history
MAX_DELIVERY_ATTEMPTS = 8
# Posting stops in time for the tick to end well inside Dagster's sensor time limit (60 s), however many
# alerts are due and however slowly the webhook answers (each post may take up to its deadline).
DELIVERY_BUDGET_SECONDS = 40
RUN_PAGE_SIZE = 200  # failed runs read per query; every page is read each tick
log = structlog.get_logger("report_pipeline.alerts")


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go. The URL is a secret, read at run time from the variable named here."""

    webhook_url_env_var: str = "REPORT_PIPELINE_ALERT_WEBHOOK_URL"
    format: str = "slack"  # slack or json
    dagster_ui_url: str = "http://127.0.0.1:3000"

    def webhook_url(self) -> str | None:
        return os.environ.get(self.webhook_url_env_var) or None

    def run_url(self, run_id: str | None) -> str | None:
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}" if run_id else None


def queue_alerts(
    context: dg.SensorEvaluationContext,
    specs: dict[str, ReportSpec],
    ledger,
    alerts: AlertsResource,
    now: dt.datetime,
) -> int:
    """Queue the alerts this tick has found; returns how many were new. The ledger selects only the
    sagas still owed an alert, page by page, so no backlog is ever cut off."""
    queued = 0
    for page in ledger.sagas_without_alert(
        (SagaState.COMPENSATED, SagaState.FAILED_NEEDS_MANUAL), updated_after=now - LOOKBACK
    ):
        for saga in page:
            queued += _queue(
                ledger,
                outcome_alert(saga, ledger.attempts(saga.saga_id), alerts.run_url(saga.run_id)),
            )
    shortest_sla = min((spec.sla_minutes for spec in specs.values()), default=None)
    if shortest_sla is not None:
        for page in ledger.sagas_without_alert(
            (SagaState.RUNNING,),
            alert_tail=STUCK_ALERT_TAIL,
            updated_before=now - dt.timedelta(minutes=shortest_sla),
        ):
            for saga in page:
                spec = specs.get(saga.saga_name)
                if spec is not None and _aware(saga.updated_at) < now - dt.timedelta(
                    minutes=spec.sla_minutes
                ):
                    queued += _queue(
                        ledger,
                        stuck_alert(
                            saga,
                            ledger.attempts(saga.saga_id),
                            alerts.run_url(saga.run_id),
                            spec.sla_minutes,
                        ),
                    )
    for run in _runs_failed_since(context, now - LOOKBACK):
        if run.job_name not in specs or ledger.get_saga(run.root_run_id or run.run_id) is not None:
            continue
        parameters = ((run.run_config or {}).get("ops", {}).get("start_saga", {}) or {}).get(
            "config", {}
        )
        queued += _queue(
            ledger,
            run_failure_alert(
                run.job_name,
                run.run_id,
                run.status.value,
                _failure_message(context, run.run_id),
                alerts.run_url(run.run_id),
                parameters,
                run.tags.get("report_pipeline/trigger"),
            ),
        )
    return queued


def _queue(ledger, alert: Alert | None) -> int:
    return int(
        alert is not None
        and ledger.record_alert(alert.key, alert.saga_id, alert.kind.value, alert.to_json())
    )


def _runs_failed_since(
    context: dg.SensorEvaluationContext, since: dt.datetime
) -> Iterator[dg.DagsterRun]:
    """Every run that failed or was cancelled since `since`, newest first, in pages."""
    filters = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED], updated_after=since
    )
    cursor = None
    while True:
        records = context.instance.get_run_records(filters, limit=RUN_PAGE_SIZE, cursor=cursor)
        for record in records:
            yield record.dagster_run
        if len(records) < RUN_PAGE_SIZE:
            return
        cursor = records[-1].dagster_run.run_id


def deliver_alerts(
    ledger,
    alerts: AlertsResource,
    now: dt.datetime | None = None,
    budget_seconds: float = DELIVERY_BUDGET_SECONDS,
) -> dict[str, int]:
    """Post every due alert once; failures are rescheduled with backoff, then given up on. A post is
    started only while a whole attempt still fits in the tick's budget; the rest wait for the next tick."""
    now = now or dt.datetime.now(dt.UTC)
    counts = {"delivered": 0, "logged": 0, "retrying": 0, "failed": 0, "deferred": 0}
    url = alerts.webhook_url()
    ends = time.monotonic() + budget_seconds
    for row in ledger.due_alerts(now):
        if url is not None and time.monotonic() + DELIVERY_DEADLINE_SECONDS > ends:
            counts["deferred"] += 1
            continue
        alert = Alert.from_json(row["payload"])
        if url is None:
            log.warning("alert (no webhook configured)", **alert.to_json())
            ledger.update_alert(row["alert_key"], status="logged", attempts=row["attempts"] + 1)
            counts["logged"] += 1
            continue
        attempts = row["attempts"] + 1
        try:
            post_alert(url, alert, alerts.format)
        except DeliveryError as error:
            final = attempts >= MAX_DELIVERY_ATTEMPTS
            delay = dt.timedelta(seconds=min(2**attempts, 600))
            ledger.update_alert(
                row["alert_key"],
                status="failed" if final else "pending",
                attempts=attempts,
                next_attempt_at=now + delay,
                last_error=str(error),
            )
            log.error(
                "alert delivery failed",
                alert_key=row["alert_key"],
                attempts=attempts,
                error=str(error),
                gave_up=final,
            )
            counts["failed" if final else "retrying"] += 1
            continue
        ledger.update_alert(
            row["alert_key"], status="delivered", attempts=attempts, last_error=None
        )
        log.info(
            "alert delivered", alert_key=row["alert_key"], kind=alert.kind, saga_id=alert.saga_id
        )
        counts["delivered"] += 1
    return counts


def build_alert_sensor(specs: dict[str, ReportSpec]) -> dg.SensorDefinition:
    @dg.sensor(
        name="saga_alert_sensor",
        minimum_interval_seconds=ALERT_INTERVAL_SECONDS,
        required_resource_keys={"ledger", "alerts"},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once per saga outcome (compensated, needs manual, timed out, stuck) "
        "and per report run that failed before its saga started.",
    )
    def saga_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        ledger, alerts = context.resources.ledger.ledger, context.resources.alerts
        now = dt.datetime.now(dt.UTC)
        queued = queue_alerts(context, specs, ledger, alerts, now)
        counts = deliver_alerts(ledger, alerts)
        return dg.SkipReason(
            f"queued {queued}; " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )

    return saga_alert_sensor


def _failure_message(context: dg.SensorEvaluationContext, run_id: str) -> str | None:
    records = context.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        if getattr(data, "error", None) is not None:
            return data.error.message.strip()[:2000]
    return None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


__all__ = ["FORMATS", "AlertsResource", "build_alert_sensor", "deliver_alerts", "queue_alerts"]
