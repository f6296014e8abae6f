"""Tests of the local engine, driven only through the real `trino` client or raw HTTP."""

import pytest
import trino

# Runs for minutes on DuckDB unless stopped: for cancellation, kill and timeout tests.
ENDLESS_QUERY = (
    "SELECT sum((a.sequential_number * b.sequential_number) % 7) "
    "FROM TABLE(sequence(1, 100000)) a CROSS JOIN TABLE(sequence(1, 100000)) b"
)


def error_name_of(cursor: trino.dbapi.Cursor, sql: str) -> str:
    """The Trino error name a statement fails with (the test fails if it does not fail)."""
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(sql)
        cursor.fetchall()
    return raised.value.error_name
