"""Failures reach the client as Trino reports them, so it raises the right exception class."""

from __future__ import annotations

import decimal
import secrets
from collections.abc import Iterator

import pytest
import requests
import trino

from report_pipeline.local_trino import Fault, LocalTrino


@pytest.mark.parametrize(
    ("sql", "error_name"),
    [
        ("SELEC 1", "SYNTAX_ERROR"),
        ("SELECT 1; SELECT 2", "SYNTAX_ERROR"),
        ("SELECT 1;", "SYNTAX_ERROR"),
        ("SELECT * FROM no_such_table", "TABLE_NOT_FOUND"),
        ("SELECT no_such_column FROM events", "COLUMN_NOT_FOUND"),
        ("SELECT * FROM no_such_catalog.analytics.events", "CATALOG_NOT_FOUND"),
        ("SELECT 1 / 0", "DIVISION_BY_ZERO"),
        ("SELECT CAST('abc' AS integer)", "INVALID_CAST_ARGUMENT"),
        ("SELECT format_datetime(current_timestamp, 'yyyy-MM-dd')", "NOT_SUPPORTED"),
        ("CREATE TABLE analytics.events AS SELECT 1 AS x", "TABLE_ALREADY_EXISTS"),
        ("SET SESSION no_such_property = 1", "INVALID_SESSION_PROPERTY"),
        ("CALL system.runtime.no_such_procedure()", "PROCEDURE_NOT_FOUND"),
    ],
)
def test_user_error_is_raised_as_trino_user_error(cursor, sql: str, error_name: str) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(sql)
        cursor.fetchall()
    assert raised.value.error_name == error_name
    assert raised.value.error_type == "USER_ERROR"
    assert raised.value.query_id


def test_table_not_found_message_is_trinos(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT * FROM no_such_table")
    assert raised.value.message == "Table 'no_such_table' does not exist"


def test_syntax_error_has_a_location(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT\n  FROM WHERE")
    location = raised.value.error_location
    assert location is not None and location[0] >= 1


def test_untranslatable_function_is_named_in_the_error(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT format_datetime(current_timestamp, 'yyyy')")
    assert "format_datetime" in raised.value.message


@pytest.mark.parametrize(
    ("error_name", "error_type", "exception"),
    [
        ("HIVE_METASTORE_ERROR", "EXTERNAL", trino.exceptions.TrinoExternalError),
        ("EXCEEDED_GLOBAL_MEMORY_LIMIT", None, trino.exceptions.TrinoQueryError),
        ("GENERIC_INTERNAL_ERROR", None, trino.exceptions.TrinoQueryError),
    ],
)
def test_error_type_decides_the_client_exception(
    local_trino: LocalTrino, cursor, error_name, error_type, exception
) -> None:
    local_trino.inject(
        Fault(
            pattern="error_kind_probe",
            action="error",
            error_name=error_name,
            error_type=error_type,
            message="boom",
        )
    )
    with pytest.raises(exception) as raised:
        cursor.execute("SELECT 'error_kind_probe'")
    assert raised.value.error_name == error_name
    assert not isinstance(raised.value, trino.exceptions.TrinoUserError)


def test_failed_document_carries_failure_info_and_no_next_uri(local_trino: LocalTrino) -> None:
    headers = {"X-Trino-User": "tester", "X-Trino-Catalog": "lake", "X-Trino-Schema": "analytics"}
    document = requests.post(
        f"{local_trino.url}/v1/statement",
        data="SELECT * FROM missing_table",
        headers=headers,
        timeout=10,
    ).json()
    while "nextUri" in document:
        document = requests.get(document["nextUri"], timeout=10).json()
    error = document["error"]
    assert document["stats"]["state"] == "FAILED"
    assert (error["errorName"], error["errorCode"], error["errorType"]) == (
        "TABLE_NOT_FOUND",
        46,
        "USER_ERROR",
    )
    assert error["failureInfo"]["message"] == error["message"]


# --- Trino's analysis errors, where DuckDB would fail otherwise or answer -------------------------


@pytest.mark.parametrize(
    ("sql", "error_name"),
    [
        ("SELECT TIMESTAMP '2026-13-45 00:00:00'", "INVALID_LITERAL"),
        ("SELECT DATE 'yesterday'", "INVALID_LITERAL"),
        # a daylight-saving gap
        ("SELECT TIMESTAMP '2026-03-08 02:30:00 America/New_York'", "INVALID_LITERAL"),
        ("SELECT e.user_id FROM events AS x", "COLUMN_NOT_FOUND"),
        ("SELECT CAST(1 AS no_such_type)", "TYPE_MISMATCH"),
        ("SELECT id FROM users a JOIN users b ON a.id = b.id", "AMBIGUOUS_NAME"),
        (
            "WITH a AS (SELECT 1 AS x), a AS (SELECT 2 AS x) SELECT * FROM a",
            "DUPLICATE_NAMED_QUERY",
        ),
        ("SELECT * FROM (VALUES (1, 2)) AS t(a)", "MISMATCHED_COLUMN_ALIASES"),
        ("SELECT 1 = '1'", "TYPE_MISMATCH"),
        ("SELECT 'a' + 1", "TYPE_MISMATCH"),
        ("SELECT * FROM events WHERE event_date = 5", "TYPE_MISMATCH"),
        ("SELECT CASE WHEN true THEN 1 ELSE 'one' END", "TYPE_MISMATCH"),
        ("SELECT ARRAY[1, 'a']", "TYPE_MISMATCH"),
        ("SELECT 1 UNION SELECT 'a'", "TYPE_MISMATCH"),
        ("SELECT * FROM events WHERE event_type", "TYPE_MISMATCH"),
        ("SELECT CAST(300 AS tinyint)", "NUMERIC_VALUE_OUT_OF_RANGE"),
        ("SELECT max(count(*)) FROM events", "NESTED_AGGREGATION"),
        ("SELECT sum(rank() OVER (ORDER BY id)) FROM users", "NESTED_WINDOW"),
        ("SELECT count(*) FROM events WHERE count(*) > 1", "EXPRESSION_NOT_SCALAR"),
        ("SELECT id FROM users ORDER BY 2", "INVALID_COLUMN_REFERENCE"),
        (
            "SELECT x, sum(x) OVER (ORDER BY x ROWS BETWEEN UNBOUNDED FOLLOWING AND CURRENT ROW) "
            "FROM (VALUES 1) AS t(x)",
            "INVALID_WINDOW_FRAME",
        ),
        ("SELECT * FROM users LIMIT -1", "SYNTAX_ERROR"),
        ("SET SESSION no_such_catalog.some_property = 1", "CATALOG_NOT_FOUND"),
        ("SET SESSION lake.no_such_property = 1", "INVALID_SESSION_PROPERTY"),
        ("SET SESSION join_distribution_type = 'SIDEWAYS'", "INVALID_SESSION_PROPERTY"),
        ("CREATE TABLE analytics.err_unnamed AS SELECT 1", "MISSING_COLUMN_NAME"),
        ("CREATE TABLE analytics.err_unknown AS SELECT NULL AS x", "COLUMN_TYPE_UNKNOWN"),
        ("CREATE TABLE analytics.err_duplicate (a integer, a varchar)", "DUPLICATE_COLUMN_NAME"),
        ("CREATE TABLE analytics.err_type (a no_such_type)", "TYPE_NOT_FOUND"),
        # as Trino's PostgreSQL connector
        ("CREATE VIEW analytics.err_view AS SELECT 1 AS x", "NOT_SUPPORTED"),
    ],
)
def test_analysis_error_is_trinos(cursor, sql: str, error_name: str) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(sql)
        cursor.fetchall()
    assert raised.value.error_name == error_name


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT TIMESTAMP '2026-01-01 1:2'",
        "SELECT DATE '2026-1-1'",
        "SELECT 1 = 1.5, 'a' = 'b', DATE '2026-01-01' < TIMESTAMP '2026-01-02 00:00:00'",
        "SELECT CASE WHEN true THEN 1 ELSE 2.5 END",
        "SELECT * FROM (VALUES (1, 2)) AS t(a, b)",
    ],
)
def test_what_trino_accepts_still_answers(cursor, sql: str) -> None:
    cursor.execute(sql)
    assert len(cursor.fetchall()) == 1


def test_missing_schema_is_reported_before_missing_catalog(connect) -> None:
    cursor = connect(catalog=None, schema=None).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT * FROM events")
    assert raised.value.error_name == "MISSING_SCHEMA_NAME"


def test_unknown_session_property_in_the_header_fails_the_query(connect) -> None:
    cursor = connect(session_properties={"no_such_property": "x"}).cursor()
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT 1")
    assert raised.value.error_name == "INVALID_SESSION_PROPERTY"


def test_missing_parameter_is_invalid_parameter_usage(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("EXECUTE IMMEDIATE 'SELECT ? AS one'")
    assert raised.value.error_name == "INVALID_PARAMETER_USAGE"


def test_describe_output_of_a_statement_with_a_parameter_in_its_predicate(cursor) -> None:
    cursor.execute("PREPARE err_daily FROM SELECT count(*) AS n FROM events WHERE event_date = ?")
    cursor.fetchall()
    cursor.execute("DESCRIBE OUTPUT err_daily")
    assert [(r[0], r[4]) for r in cursor.fetchall()] == [("n", "bigint")]


@pytest.fixture
def orders(cursor) -> Iterator[str]:
    name = f"analytics.err_orders_{secrets.token_hex(3)}"
    cursor.execute(f"CREATE TABLE {name} (id integer, customer varchar, amount decimal(10, 2))")
    cursor.fetchall()
    cursor.execute(f"INSERT INTO {name} VALUES (1, 'ann', 10), (2, 'bob', 20), (3, 'jon', 30)")
    cursor.fetchall()
    yield name
    cursor.execute(f"DROP TABLE {name}")
    cursor.fetchall()


def test_insert_of_varchar_into_an_integer_column_is_a_type_mismatch(cursor, orders) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(f"INSERT INTO {orders} (id) VALUES ('1')")
    assert raised.value.error_name == "TYPE_MISMATCH"


def test_insert_with_too_few_values_is_a_type_mismatch(cursor, orders) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(f"INSERT INTO {orders} VALUES (1)")
    assert raised.value.error_name == "TYPE_MISMATCH"


def test_drop_of_a_schema_with_tables_is_schema_not_empty(cursor, orders) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("DROP SCHEMA analytics")
    assert raised.value.error_name == "SCHEMA_NOT_EMPTY"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET amount = amount * 2 WHERE id = 2",  # SET from a column
        "DELETE FROM {t} WHERE lower(customer) LIKE '%n'",  # a function of a column
        "DELETE FROM {t} WHERE customer > 'a'",  # a text range: PostgreSQL's collation
        "MERGE INTO {t} t USING (VALUES (1)) AS s(id) ON t.id = s.id WHEN MATCHED THEN DELETE",
    ],
)
def test_row_changes_the_postgresql_connector_cannot_push_down_are_not_supported(
    cursor, orders, statement
) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(statement.format(t=orders))
    assert raised.value.error_name == "NOT_SUPPORTED"
    cursor.execute(f"SELECT sum(amount) FROM {orders}")
    assert cursor.fetchall() == [[decimal.Decimal("60.00")]]


@pytest.mark.parametrize(
    ("statement", "count"),
    [
        ("UPDATE {t} SET amount = 5, customer = 'x' WHERE id = 2", 1),
        ("UPDATE {t} SET amount = 2 * 3 WHERE id BETWEEN 1 AND 2", 2),
        ("DELETE FROM {t} WHERE id + 1 = 2 AND customer = 'ann'", 1),
        ("DELETE FROM {t} WHERE customer IN ('ann', 'bob') OR customer IS NULL", 2),
        ("DELETE FROM {t}", 3),
    ],
)
def test_row_changes_the_postgresql_connector_pushes_down_run(
    cursor, orders, statement, count
) -> None:
    cursor.execute(statement.format(t=orders))
    assert cursor.fetchall() == [[count]]
