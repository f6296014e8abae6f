"""`saga_alert_sensor`: the Dagster side of alerting. What is owed and its delivery with retries are
in `report_pipeline/alerting/delivery.py`; this reads the runs that failed from Dagster's run
storage and hands them over as plain `FailedRun`s.

The webhook URL is a secret: it is read from the environment at run time and never logged.
"""

import datetime as dt
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from report_pipeline import settings
from report_pipeline.alerting.alerts import LinkTargets
from report_pipeline.alerting.delivery import (
    LOOKBACK,
    FailedRun,
    Webhook,
    deliver_alerts,
    queue_run_failure_alerts,
    queue_saga_alerts,
)
from report_pipeline.alerting.outbox import AlertOutbox
from report_pipeline.orchestration.names import START_OP, TRIGGER_TAG
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.saga.ledger import SqlLedger

ALERT_INTERVAL_SECONDS = 15
RUN_PAGE_SIZE = 200  # failed runs read per query; every page is read each tick


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go, and the UIs their links lead to. The webhook URL is a secret, read at run
    time from the settings."""

    format: str = "slack"  # slack or json
    dagster_ui_url: str = "http://127.0.0.1:3000"  # DAGSTER_UI_URL
    grafana_url: str = "http://127.0.0.1:3001"  # REPORT_PIPELINE_GRAFANA_URL

    def webhook(self) -> Webhook | None:
        url = settings.ALERT_WEBHOOK_URL.read()
        return Webhook(url, self.format) if url else None

    def link_targets(self) -> LinkTargets:
        return LinkTargets(self.dagster_ui_url, self.grafana_url)


def queue_alerts(
    context: dg.SensorEvaluationContext,
    specs: dict[str, ReportSpec],
    ledger: SqlLedger,
    alerts: AlertsResource,
    now: dt.datetime,
) -> int:
    """Queue the alerts this tick has found (sagas, and report runs that failed before their saga),
    each with its links (run, compensation run, dashboard, logs); returns how many were new."""
    outbox = AlertOutbox(ledger.engine)
    sla_minutes = {name: spec.sla_minutes for name, spec in specs.items()}
    report_runs = (
        _failed_run(run)
        for run in _runs_failed_since(context, now - LOOKBACK)
        if run.job_name in specs
    )
    targets = alerts.link_targets()
    return queue_saga_alerts(ledger, outbox, sla_minutes, targets, now) + (
        queue_run_failure_alerts(
            ledger,
            outbox,
            report_runs,
            functools.partial(_failure_message, context),
            targets,
        )
    )


def build_alert_sensor(specs: dict[str, ReportSpec]) -> dg.SensorDefinition:
    @dg.sensor(
        name="saga_alert_sensor",
        minimum_interval_seconds=ALERT_INTERVAL_SECONDS,
        required_resource_keys={"ledger", "alerts"},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Alerts once per saga outcome (compensated, needs manual, timed out, overdue) "
        "and per report run that failed before its saga started.",
    )
    def saga_alert_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        ledger, alerts = context.resources.ledger.ledger, context.resources.alerts
        now = dt.datetime.now(dt.UTC)
        queued = queue_alerts(context, specs, ledger, alerts, now)
        counts = deliver_alerts(AlertOutbox(ledger.engine), alerts.webhook())
        return dg.SkipReason(
            f"queued {queued}; " + ", ".join(f"{k} {v}" for k, v in counts.items())
        )

    return saga_alert_sensor


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


def _failed_run(run: dg.DagsterRun) -> FailedRun:
    run_config: Mapping[str, Any] = run.run_config or {}
    start_saga = run_config.get("ops", {}).get(START_OP, {}) or {}
    return FailedRun(
        report=run.job_name,
        run_id=run.run_id,
        saga_id=run.root_run_id or run.run_id,
        status=run.status.value,
        parameters=start_saga.get("config", {}),
        trigger=run.tags.get(TRIGGER_TAG),
    )


def _failure_message(context: dg.SensorEvaluationContext, run_id: str) -> str | None:
    """The error of the run's first step that failed with one (at most 2,000 characters)."""
    records = context.instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        error = getattr(event.event_specific_data, "error", None) if event else None
        if error is not None:
            return error.message.strip()[:2000]
    return None


__all__ = ["AlertsResource", "build_alert_sensor", "queue_alerts"]
