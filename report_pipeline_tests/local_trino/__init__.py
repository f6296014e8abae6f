"""Tests of the local engine, driven only through the real `trino` client or raw HTTP."""

import pytest
import trino

from report_pipeline.local_trino import LocalTrino
from report_pipeline.local_trino.query import Query

# Runs for minutes on DuckDB unless stopped: for cancellation, kill and timeout tests.
ENDLESS_QUERY = (
    "SELECT sum((a.sequential_number * b.sequential_number) % 7) "
    "FROM TABLE(sequence(1, 100000)) a CROSS JOIN TABLE(sequence(1, 100000)) b"
)


def error_name_of(cursor: trino.dbapi.Cursor, sql: str) -> str | None:
    """The Trino error name a statement fails with (the test fails if it does not fail)."""
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute(sql)
        cursor.fetchall()
    return raised.value.error_name


def cancel_would_land(cursor: trino.dbapi.Cursor) -> bool:
    """Whether the client knows where to send a cancel: it names the query a moment before it
    stores the URI a cancel goes to (a cancel before that is a silent no-op)."""
    query = cursor._query  # the client's own record of the statement: no public accessor
    return cursor.query_id is not None and query is not None and query._next_uri is not None


def engine_query(local_trino: LocalTrino, query_id: str | None) -> Query:
    """The engine's own record of a statement; the test fails if there is none."""
    query = local_trino.engine.get(query_id) if query_id is not None else None
    assert query is not None, f"the engine has no query {query_id}"
    return query


def error_name(query: Query) -> str | None:
    """The Trino error name the engine failed a statement with; None if it has not failed."""
    return query.error.name if query.error is not None else None
