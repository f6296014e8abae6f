"""`make demo`: daily_country_report as a saga on Dagster, on the embedded local engine.

One run succeeds; one has a fault injected into its second step and is compensated. Everything is
temporary and local: the engine with sample data, a Dagster instance in a temporary directory, and
the saga ledger in SQLite there too (REPORT_PIPELINE_LEDGER_URL points it at PostgreSQL instead).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import dagster as dg
import trino
from tabulate import tabulate

from report_pipeline import settings
from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.observability.status import describe_saga
from report_pipeline.orchestration.names import SAGA_ID_TAG, START_OP
from report_pipeline.saga.ledger import SqlLedger

REPORT = "daily_country_report"


def run_report(instance: dg.DagsterInstance, parameters: dict) -> dg.DagsterRun:
    job = dg.build_reconstructable_job(
        "report_pipeline.definitions", "report_job", reconstructable_args=(REPORT,)
    )
    config = {"ops": {START_OP: {"config": parameters}}}
    with dg.execute_job(job, instance=instance, run_config=config) as result:
        run = instance.get_run_by_id(result.run_id)
    assert run is not None  # execute_job stored it
    return run


def main(start_date: dt.date, end_date: dt.date, min_events: int) -> None:
    parameters = {
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "min_events": min_events,
    }
    with (
        tempfile.TemporaryDirectory(prefix="report-pipeline-demo-") as home,
        LocalTrino(fault_injection=True) as engine,
    ):  # the second run has a fault injected
        # for the runs' processes, which load the code location
        ledger_url = settings.LEDGER_URL.read() or f"sqlite:///{home}/ledger.sqlite"
        os.environ.update(
            {
                **settings.trino_environment(engine.host, engine.port, "demo", engine.catalog),
                settings.LEDGER_URL.name: ledger_url,
            }
        )
        ledger = SqlLedger(ledger_url)
        print(f"local Trino-compatible engine at {engine.url}; Dagster instance in {home}\n")
        with dg.DagsterInstance.local_temp(home) as instance:
            print(f"1) {REPORT} {parameters}")
            run = run_report(instance, parameters)
            saga_id = run.tags[SAGA_ID_TAG]
            print(f"   run {run.run_id}: {run.status.value}\n")
            print(_report_table(engine, saga_id), "\n")
            print(describe_saga(ledger, saga_id), "\n")

            engine.inject(
                Fault(
                    pattern=r"INSERT INTO reports\.daily_country_report",
                    action="error",
                    error_name="PERMISSION_DENIED",
                    message="Access Denied: Cannot insert into table reports.daily_country_report",
                )
            )
            print(
                f"2) {REPORT} {parameters}, "
                "with a fault injected into its second step (write_report)"
            )
            run = run_report(instance, parameters)
            saga_id = run.tags[SAGA_ID_TAG]
            print(f"   run {run.run_id}: {run.status.value}\n")
            print(describe_saga(ledger, saga_id), "\n")
        ledger.close()


def _report_table(engine: LocalTrino, saga_id: str) -> str:
    with trino.dbapi.connect(
        host=engine.host, port=engine.port, user="demo", catalog=engine.catalog
    ) as c:
        cursor = c.cursor()
        cursor.execute(
            "SELECT country, active_users, avg_events FROM reports.daily_country_report "
            "WHERE saga_id = ? ORDER BY avg_events DESC",
            [saga_id],
        )
        rows = cursor.fetchall()
    return tabulate(rows, headers=["country", "active users", "avg events"], floatfmt=".2f")
