"""The code location: one job per report, with its resources. The only place where the parts meet."""

from __future__ import annotations

import dagster as dg

from report_pipeline.orchestration.jobs import build_report_job
from report_pipeline.orchestration.resources import LedgerResource, TrinoResource
from report_pipeline.reports import load_reports


def build_definitions() -> dg.Definitions:
    return dg.Definitions(
        jobs=[build_report_job(spec) for spec in load_reports().values()],
        resources={
            "trino": TrinoResource(host=dg.EnvVar("TRINO_HOST"), port=dg.EnvVar.int("TRINO_PORT"),
                                   user=dg.EnvVar("TRINO_USER"), catalog=dg.EnvVar("TRINO_CATALOG")),
            "ledger": LedgerResource(url=dg.EnvVar("REPORT_PIPELINE_LEDGER_URL")),
        },
    )


defs = build_definitions()


def report_job(name: str) -> dg.JobDefinition:
    """A report's job with its resources bound (for `build_reconstructable_job`)."""
    return defs.resolve_job_def(name)
