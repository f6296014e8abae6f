"""`make demo`: the daily country report on the embedded local engine, through the real trino client."""

from __future__ import annotations

import datetime as dt
import secrets

import trino
from tabulate import tabulate

from report_pipeline.local_trino import LocalTrino
from report_pipeline.reports import REPORTS_DIR
from report_pipeline.trino.sql import QualifiedName, render

REPORT_DIR = REPORTS_DIR / "daily_country_report"


def run_daily_country_report(host: str, port: int, catalog: str, start_date: dt.date, end_date: dt.date,
                             min_events: int) -> tuple[list[str], list[list]]:
    """Create the summary, aggregate it, and drop it again (even when the aggregation fails)."""
    summary = QualifiedName(catalog, "scratch", f"summary_demo_{secrets.token_hex(4)}")
    values = {"start_date": start_date, "end_date": end_date, "min_events": min_events}
    tables = {"summary": summary}
    with trino.dbapi.connect(host=host, port=port, user="report_pipeline", catalog=catalog,
                             schema="analytics", source="report_pipeline.demo") as connection:
        cursor = connection.cursor()

        def run(file: str) -> list[list]:
            statement = render((REPORT_DIR / file).read_text(), tables, values)
            cursor.execute(statement.sql, statement.parameters)
            return cursor.fetchall()

        run("create_summary.sql")
        try:
            rows = run("country_averages.sql")
            columns = [d.name for d in cursor.description]
        finally:
            run("drop_summary.sql")
    return columns, rows


def main(start_date: dt.date, end_date: dt.date, min_events: int) -> None:
    with LocalTrino() as engine:
        print(f"local Trino-compatible engine at {engine.url} (catalog {engine.catalog}, sample data)")
        columns, rows = run_daily_country_report(engine.host, engine.port, engine.catalog,
                                                 start_date, end_date, min_events)
    print(f"\ndaily_country_report  {start_date} .. {end_date}, users with more than {min_events} events\n")
    print(tabulate(rows, headers=columns, floatfmt=".2f"))
