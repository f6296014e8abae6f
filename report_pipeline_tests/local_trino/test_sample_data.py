"""The sample warehouse is deterministic and shaped like the reports expect."""

from __future__ import annotations

import duckdb

from report_pipeline.local_trino.sample_data import COUNTRIES, load_sample_data, users_for


def generate(events: int) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("ATTACH ':memory:' AS lake")
    load_sample_data(connection, "lake", events)
    return connection


def one_row(connection: duckdb.DuckDBPyConnection, sql: str) -> tuple:
    row = connection.execute(sql).fetchone()
    assert row is not None, f"no row from {sql}"
    return row


def fingerprint(connection: duckdb.DuckDBPyConnection, table: str) -> tuple:
    return one_row(
        connection, f"SELECT count(*), sum(hash(COLUMNS(*))) FROM lake.analytics.{table}"
    )


def test_same_arguments_give_the_same_rows() -> None:
    first, second = generate(5000), generate(5000)
    for table in ("events", "users"):
        assert fingerprint(first, table) == fingerprint(second, table)


def test_sizes_follow_the_requested_event_count() -> None:
    connection = generate(5000)
    assert one_row(connection, "SELECT count(*) FROM lake.analytics.events")[0] == 5000
    assert one_row(connection, "SELECT count(*) FROM lake.analytics.users")[0] == users_for(5000)


def test_every_event_belongs_to_a_known_user_and_country() -> None:
    connection = generate(5000)
    (orphans,) = one_row(
        connection,
        "SELECT count(*) FROM lake.analytics.events e "
        "LEFT JOIN lake.analytics.users u ON e.user_id = u.id WHERE u.id IS NULL",
    )
    countries = {
        r[0]
        for r in connection.execute("SELECT DISTINCT country FROM lake.analytics.users").fetchall()
    }
    assert orphans == 0
    assert countries == set(COUNTRIES)


def test_existing_tables_are_kept() -> None:
    connection = generate(1000)
    before = fingerprint(connection, "events")
    assert load_sample_data(connection, "lake", 9999) is False
    assert fingerprint(connection, "events") == before


def test_scratch_and_reports_schemas_exist() -> None:
    schemas = {
        r[0]
        for r in generate(100)
        .execute("SELECT schema_name FROM duckdb_schemas() WHERE database_name = 'lake'")
        .fetchall()
    }
    assert {"analytics", "scratch", "reports"} <= schemas
