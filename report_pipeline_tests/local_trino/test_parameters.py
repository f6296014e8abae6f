"""Bound parameters as the client sends them: EXECUTE IMMEDIATE, or PREPARE/EXECUTE/DEALLOCATE."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import trino

VALUES = [
    "it's quoted",
    "?",  # a question mark inside a value is a value, not a placeholder
    42,
    -7.25,
    Decimal("123.4500"),
    True,
    None,
    dt.date(2026, 3, 1),
    dt.datetime(2026, 3, 1, 10, 30, 15, 123000),
    [1, 2, 3],
]


@pytest.mark.parametrize("value", VALUES, ids=[repr(v) for v in VALUES])
def test_bound_value_comes_back_unchanged(cursor, value: object) -> None:
    cursor.execute("SELECT ?", [value])
    assert cursor.fetchall() == [[value]]


def test_parameters_filter_a_real_table(cursor) -> None:
    cursor.execute(
        "SELECT count(*) FROM events WHERE event_date BETWEEN ? AND ? AND event_type = ?",
        [dt.date(2026, 1, 1), dt.date(2026, 1, 10), "click"],
    )
    with_params = cursor.fetchone()[0]
    cursor.execute(
        "SELECT count(*) FROM events WHERE event_date BETWEEN DATE '2026-01-01' "
        "AND DATE '2026-01-10' AND event_type = 'click'"
    )
    assert with_params == cursor.fetchone()[0] > 0


def test_question_mark_inside_a_string_literal_is_not_a_placeholder(cursor) -> None:
    cursor.execute("SELECT '?' AS literal, ? AS bound", ["value"])
    assert cursor.fetchall() == [["?", "value"]]


def test_legacy_prepared_statements_work_too(connect) -> None:
    cursor = connect(legacy_prepared_statements=True).cursor()
    cursor.execute("SELECT ? + 1, ?", [41, "x"])
    assert cursor.fetchall() == [[42, "x"]]


def test_parameter_count_mismatch_is_a_user_error(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("EXECUTE IMMEDIATE 'SELECT ?, ?' USING 1")
        cursor.fetchall()
    assert raised.value.error_name == "INVALID_PARAMETER_USAGE"


def test_executing_an_unknown_prepared_statement_is_not_found(cursor) -> None:
    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("EXECUTE never_prepared USING 1")
        cursor.fetchall()
    assert raised.value.error_name == "NOT_FOUND"
