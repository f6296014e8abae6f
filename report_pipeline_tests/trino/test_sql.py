"""Rendering report SQL: values become bound parameters, generated tables become quoted names."""

from __future__ import annotations

import datetime as dt

import pytest

from report_pipeline.trino import sql
from report_pipeline.trino.sql import QualifiedName, SqlRenderError, parameter_names, render

SUMMARY = QualifiedName("lake", "scratch", "summary_abc123")


def test_named_values_become_positional_parameters_in_order() -> None:
    statement = render(
        "SELECT * FROM t WHERE d BETWEEN :start_date AND :end_date AND n > :min_events",
        {},
        {"start_date": dt.date(2026, 1, 1), "end_date": dt.date(2026, 1, 2), "min_events": 3},
    )
    assert statement.sql == "SELECT * FROM t WHERE d BETWEEN ? AND ? AND n > ?"
    assert statement.parameters == [dt.date(2026, 1, 1), dt.date(2026, 1, 2), 3]


def test_a_value_used_twice_is_bound_twice() -> None:
    statement = render("SELECT :x, :x", {}, {"x": 1})
    assert statement.parameters == [1, 1]


def test_colon_inside_strings_and_comments_is_not_a_parameter() -> None:
    statement = render("SELECT ':not_a_param' -- :nor_this\n, :real", {}, {"real": 5})
    assert statement.parameters == [5]
    assert "':not_a_param'" in statement.sql


def test_table_placeholder_becomes_a_quoted_qualified_name() -> None:
    statement = render("DROP TABLE IF EXISTS ${summary};", {"summary": SUMMARY}, {})
    assert statement.sql == 'DROP TABLE IF EXISTS "lake"."scratch"."summary_abc123"'


def test_missing_value_is_an_error_naming_it() -> None:
    with pytest.raises(SqlRenderError, match=":min_events"):
        render("SELECT :min_events", {}, {})


def test_missing_table_is_an_error_naming_it() -> None:
    with pytest.raises(SqlRenderError, match="summary"):
        render("SELECT * FROM ${summary}", {}, {})


@pytest.mark.parametrize(
    "bad", ["Upper", "has-dash", "x;drop", "a b", '"quoted"', "", "1starts_with_digit"]
)
def test_identifier_parts_are_validated(bad: str) -> None:
    with pytest.raises(SqlRenderError):
        QualifiedName("lake", "scratch", bad)


def test_parameter_names_lists_what_a_file_needs() -> None:
    assert parameter_names("SELECT :a FROM t WHERE b = :b AND c = ':c'") == ["a", "b"]


def test_substituting_tables_keeps_named_parameters() -> None:
    assert (
        sql.substitute_tables(
            "DELETE FROM ${summary} WHERE saga_id = :saga_id", {"summary": SUMMARY}
        )
        == 'DELETE FROM "lake"."scratch"."summary_abc123" WHERE saga_id = :saga_id'
    )


def test_parsing_ignores_comments() -> None:
    tree = sql.parse_statement("-- DROP SCHEMA analytics\nDROP TABLE IF EXISTS t /* ${summary} */")
    assert tree.key == "drop" and tree.args["kind"] == "TABLE"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "root x 0 0 SECRET CONTENT",
            "is not valid Trino SQL (line 1, column 8: Invalid expression / Unexpected token)",
        ),
        ("SELECT 1 FROM SECRET CONTENT HERE", "is not valid Trino SQL (line 1, column"),
        ("SELECT 'SECRET", "is not valid Trino SQL (an unterminated string"),
        ("SELECT 1; SELECT 'SECRET'", "must hold exactly one statement, not 2"),
    ],
)
def test_parse_error_says_where_without_quoting_the_text(text: str, problem: str) -> None:
    with pytest.raises(SqlRenderError) as raised:
        sql.parse_statement(text)
    assert str(raised.value).startswith(problem) and "SECRET" not in str(raised.value)


def test_untokenizable_text_is_an_error_that_does_not_quote_it() -> None:
    with pytest.raises(SqlRenderError, match="unterminated") as raised:
        render("SELECT :x, 'SECRET", {}, {"x": 1})
    assert "SECRET" not in str(raised.value)
