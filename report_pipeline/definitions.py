"""The code location: one job per report, with its resources. The only place where the parts meet."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from report_pipeline.orchestration.alerting import AlertsResource, build_alert_sensor
from report_pipeline.orchestration.compensation import build_backstop_sensor, build_compensation_job
from report_pipeline.orchestration.jobs import build_report_job
from report_pipeline.orchestration.resources import LedgerResource, trino_resource_from_env
from report_pipeline.orchestration.sweeper import build_sweeper_sensor
from report_pipeline.orchestration.triggers import build_arrival_sensor, build_schedule
from report_pipeline.reporting import REPORTS_DIR, load_reports


def build_definitions(
    reports_dir: Path = REPORTS_DIR, sweep_min_age_seconds: float = 3600
) -> dg.Definitions:
    specs = load_reports(reports_dir)
    jobs = {name: build_report_job(spec) for name, spec in specs.items()}
    compensation_job = build_compensation_job(specs)
    schedules = [build_schedule(specs[name], job) for name, job in jobs.items()]
    arrival_sensors = [build_arrival_sensor(specs[name], job) for name, job in jobs.items()]
    return dg.Definitions(
        jobs=[*jobs.values(), compensation_job],
        schedules=[s for s in schedules if s is not None],
        sensors=[
            build_backstop_sensor(compensation_job),
            build_sweeper_sensor(sweep_min_age_seconds),
            build_alert_sensor(specs),
            *(s for s in arrival_sensors if s is not None),
        ],
        resources={
            "trino": trino_resource_from_env(),
            "ledger": LedgerResource(url=dg.EnvVar("REPORT_PIPELINE_LEDGER_URL")),
            "alerts": AlertsResource(
                format=os.environ.get("REPORT_PIPELINE_ALERT_FORMAT", "slack"),
                dagster_ui_url=os.environ.get("DAGSTER_UI_URL", "http://127.0.0.1:3000"),
            ),
        },
    )


# Reports ship in the package; REPORT_PIPELINE_REPORTS_DIR points a deployment (or a test) at others.
# REPORT_PIPELINE_SWEEP_MIN_AGE_SECONDS: how old a finished saga's scratch table must be to be swept.
defs = build_definitions(
    Path(os.environ.get("REPORT_PIPELINE_REPORTS_DIR") or REPORTS_DIR),
    float(os.environ.get("REPORT_PIPELINE_SWEEP_MIN_AGE_SECONDS") or 3600),
)


def report_job(name: str) -> dg.JobDefinition:
    """A report's job with its resources bound (for `build_reconstructable_job`)."""
    return defs.resolve_job_def(name)
