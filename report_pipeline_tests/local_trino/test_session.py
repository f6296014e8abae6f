"""Session state: catalog and schema defaults, USE, SET SESSION, names and metadata per catalog."""

from __future__ import annotations

import pytest
import trino


def test_unqualified_names_resolve_in_the_session_schema(connect) -> None:
    cursor = connect(schema="analytics").cursor()
    cursor.execute("SELECT count(*) FROM users")
    assert cursor.fetchone()[0] > 0


def test_three_part_names_work_without_a_session_schema(connect) -> None:
    cursor = connect(schema=None).cursor()
    cursor.execute("SELECT count(*) FROM lake.analytics.users")
    assert cursor.fetchone()[0] > 0


def test_unqualified_name_without_session_schema_is_rejected(connect) -> None:
    cursor = connect(schema=None).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT count(*) FROM users")
    assert raised.value.error_name == "MISSING_SCHEMA_NAME"


def test_use_changes_the_schema_of_later_statements(connect) -> None:
    connection = connect(schema=None)
    cursor = connection.cursor()
    cursor.execute("USE lake.analytics")
    assert cursor.fetchall() == []
    assert connection._client_session.schema == "analytics"
    cursor.execute("SELECT count(*) FROM events")
    assert cursor.fetchone()[0] > 0


def test_use_of_a_missing_schema_fails(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("USE lake.no_such_schema")
    assert raised.value.error_name == "NOT_FOUND"  # as Trino 476 answers USE


def test_set_session_comes_back_to_the_client(connect) -> None:
    connection = connect()
    connection.cursor().execute("SET SESSION query_max_run_time = '10m'")
    assert connection._client_session.properties["query_max_run_time"] == "10m"


def test_reset_session_clears_the_property(connect) -> None:
    connection = connect(session_properties={"query_max_run_time": "10m"})
    connection.cursor().execute("RESET SESSION query_max_run_time")
    assert "query_max_run_time" not in connection._client_session.properties


def test_information_schema_lists_only_the_catalogs_tables(cursor) -> None:
    cursor.execute(
        "SELECT table_catalog, table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema = 'analytics' ORDER BY table_name"
    )
    assert cursor.fetchall() == [["lake", "analytics", "events"], ["lake", "analytics", "users"]]


def test_information_schema_columns_use_trino_type_names(cursor) -> None:
    cursor.execute(
        "SELECT column_name, data_type FROM lake.information_schema.columns "
        "WHERE table_schema = 'analytics' AND table_name = 'events' ORDER BY ordinal_position"
    )
    types = dict(cursor.fetchall())
    assert types["event_id"] == "bigint"
    assert types["event_type"] == "varchar"
    assert types["event_time"] == "timestamp(6)"


def test_show_catalogs_and_schemas(cursor) -> None:
    cursor.execute("SHOW CATALOGS")
    assert [row[0] for row in cursor.fetchall()] == ["lake", "memory", "system"]
    cursor.execute("SHOW SCHEMAS FROM lake")
    assert {"analytics", "scratch", "reports", "information_schema"} <= {
        r[0] for r in cursor.fetchall()
    }


def test_jdbc_catalogs_lists_the_catalog(cursor) -> None:
    cursor.execute('SELECT table_cat FROM "system"."jdbc"."catalogs"')
    assert ["lake"] in cursor.fetchall()


def test_version_is_the_engines_not_duckdbs(cursor) -> None:
    cursor.execute("SELECT version()")
    assert "local" in cursor.fetchone()[0]


def test_explain_validate_answers_valid_and_other_explains_are_refused_after_checking_the_statement(
    cursor,
) -> None:
    cursor.execute("EXPLAIN (TYPE VALIDATE) SELECT count(*) FROM events")
    assert cursor.fetchall() == [[True]]
    with pytest.raises(trino.exceptions.TrinoUserError) as missing:
        cursor.execute("EXPLAIN SELECT * FROM no_such_table")
    assert missing.value.error_name == "TABLE_NOT_FOUND"  # the statement's own error, as Trino's
    with pytest.raises(trino.exceptions.TrinoUserError) as refused:
        cursor.execute("EXPLAIN SELECT 1")
    assert refused.value.error_name == "NOT_SUPPORTED"


def test_set_time_zone_changes_the_sessions_zone(connect) -> None:
    connection = connect()
    connection.cursor().execute("SET TIME ZONE 'America/Chicago'")
    assert connection._client_session.properties["time_zone_id"] == "America/Chicago"
    cursor = connection.cursor()
    cursor.execute("SELECT current_timezone()")
    assert cursor.fetchall() == [["America/Chicago"]]
