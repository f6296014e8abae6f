"""Failures reach the client as Trino reports them, so it raises the right exception class."""

from __future__ import annotations

import pytest
import requests
import trino

from report_pipeline.local_trino import Fault, LocalTrino


@pytest.mark.parametrize(("sql", "error_name"), [
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
])
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
    assert raised.value.error_location[0] >= 1


def test_untranslatable_function_is_named_in_the_error(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT format_datetime(current_timestamp, 'yyyy')")
    assert "format_datetime" in raised.value.message


@pytest.mark.parametrize(("error_name", "error_type", "exception"), [
    ("HIVE_METASTORE_ERROR", "EXTERNAL", trino.exceptions.TrinoExternalError),
    ("EXCEEDED_GLOBAL_MEMORY_LIMIT", None, trino.exceptions.TrinoQueryError),
    ("GENERIC_INTERNAL_ERROR", None, trino.exceptions.TrinoQueryError),
])
def test_error_type_decides_the_client_exception(local_trino: LocalTrino, cursor, error_name, error_type,
                                                  exception) -> None:
    local_trino.inject(Fault(pattern="error_kind_probe", action="error", error_name=error_name,
                             error_type=error_type, message="boom"))
    with pytest.raises(exception) as raised:
        cursor.execute("SELECT 'error_kind_probe'")
    assert raised.value.error_name == error_name
    assert not isinstance(raised.value, trino.exceptions.TrinoUserError)


def test_failed_document_carries_failure_info_and_no_next_uri(local_trino: LocalTrino) -> None:
    headers = {"X-Trino-User": "tester", "X-Trino-Catalog": "lake", "X-Trino-Schema": "analytics"}
    document = requests.post(f"{local_trino.url}/v1/statement", data="SELECT * FROM missing_table",
                             headers=headers, timeout=10).json()
    while "nextUri" in document:
        document = requests.get(document["nextUri"], timeout=10).json()
    error = document["error"]
    assert document["stats"]["state"] == "FAILED"
    assert (error["errorName"], error["errorCode"], error["errorType"]) == ("TABLE_NOT_FOUND", 46, "USER_ERROR")
    assert error["failureInfo"]["message"] == error["message"]
