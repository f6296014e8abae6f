"""The code location: one job per report, with its resources. The only place where the parts meet.

This module is where the code server and every run and step process start: loading it configures
logging and reads the code location's settings (report_pipeline/settings.py) from the environment
as it is then. Trino's address and credentials and the ledger's URL are resolved later, when a run
sets up its resources.
"""

from __future__ import annotations

import dagster as dg

from report_pipeline import settings
from report_pipeline.observability.logging import configure_logging
from report_pipeline.orchestration.alerting import AlertsResource, build_alert_sensor
from report_pipeline.orchestration.compensation import build_backstop_sensor, build_compensation_job
from report_pipeline.orchestration.jobs import build_report_job
from report_pipeline.orchestration.resources import LedgerResource, trino_resource_from_env
from report_pipeline.orchestration.sweeper import build_sweeper_sensor
from report_pipeline.orchestration.triggers import build_arrival_sensor, build_schedule
from report_pipeline.reporting import REPORTS_DIR, load_reports


def build_definitions() -> dg.Definitions:
    """The code location as the environment configures it now: the packaged reports unless
    REPORT_PIPELINE_REPORTS_DIR points a deployment (or a test) at others."""
    specs = load_reports(settings.REPORTS_DIR.read() or REPORTS_DIR)
    jobs = {name: build_report_job(spec) for name, spec in specs.items()}
    compensation_job = build_compensation_job(specs)
    schedules = [build_schedule(specs[name], job) for name, job in jobs.items()]
    arrival_sensors = [build_arrival_sensor(specs[name], job) for name, job in jobs.items()]
    return dg.Definitions(
        jobs=[*jobs.values(), compensation_job],
        schedules=[s for s in schedules if s is not None],
        sensors=[
            build_backstop_sensor(compensation_job),
            build_sweeper_sensor(settings.SWEEP_MIN_AGE_SECONDS.value()),
            build_alert_sensor(specs),
            *(s for s in arrival_sensors if s is not None),
        ],
        resources={
            "trino": trino_resource_from_env(),
            "ledger": LedgerResource(url=dg.EnvVar(settings.LEDGER_URL.name)),
            "alerts": AlertsResource(
                format=settings.ALERT_FORMAT.value(),
                dagster_ui_url=settings.DAGSTER_UI_URL.value(),
                grafana_url=settings.GRAFANA_URL.value(),
            ),
        },
    )


configure_logging()
defs = build_definitions()


def report_job(name: str) -> dg.JobDefinition:
    """A report's job with its resources bound (for `build_reconstructable_job`)."""
    return defs.resolve_job_def(name)
