"""The demo's report equals the same computation done directly on DuckDB over the same data."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from report_pipeline.demo import run_daily_country_report
from report_pipeline.local_trino.sample_data import load_sample_data
from report_pipeline_tests.conftest import TEST_EVENTS


def direct_report(start: dt.date, end: dt.date, min_events: int) -> list[list]:
    connection = duckdb.connect()
    connection.execute("ATTACH ':memory:' AS lake")
    load_sample_data(connection, "lake", TEST_EVENTS)
    return [list(row) for row in connection.execute("""
        WITH summary AS (
            SELECT user_id, count(*) AS event_count FROM lake.analytics.events
            WHERE event_date BETWEEN ? AND ? GROUP BY user_id HAVING count(*) > ?)
        SELECT u.country, avg(s.event_count) AS avg_events
        FROM lake.analytics.users u JOIN summary s ON u.id = s.user_id
        GROUP BY u.country ORDER BY avg_events DESC""", [start, end, min_events]).fetchall()]


def test_report_matches_direct_computation(local_trino) -> None:
    start, end, min_events = dt.date(2026, 1, 1), dt.date(2026, 1, 31), 5
    columns, rows = run_daily_country_report(local_trino.host, local_trino.port, local_trino.catalog,
                                             start, end, min_events)
    expected = direct_report(start, end, min_events)
    assert columns == ["country", "avg_events"]
    assert [r[0] for r in rows] == [r[0] for r in expected]
    assert [r[1] for r in rows] == pytest.approx([r[1] for r in expected])
    assert len(rows) > 5


def test_report_leaves_no_scratch_table(local_trino, cursor) -> None:
    run_daily_country_report(local_trino.host, local_trino.port, local_trino.catalog,
                             dt.date(2026, 1, 1), dt.date(2026, 1, 7), 1)
    cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'scratch'")
    assert cursor.fetchall() == [[0]]
