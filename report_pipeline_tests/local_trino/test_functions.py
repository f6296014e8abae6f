"""Functions whose DuckDB namesake answers differently answer as Trino 476 does (functions.py)."""

from __future__ import annotations

import math

import pytest
from trino.exceptions import TrinoUserError

from report_pipeline_tests.local_trino import error_name_of


def _one(cursor, sql: str) -> list:
    cursor.execute(sql)
    return cursor.fetchall()[0]


def test_millisecond_is_the_fraction_of_the_second(cursor) -> None:
    assert _one(cursor, "SELECT millisecond(TIMESTAMP '2026-01-01 13:14:15.678')") == [678]


def test_extract_day_of_week_is_iso(cursor) -> None:  # 2026-07-04 is a Saturday
    assert _one(
        cursor,
        "SELECT EXTRACT(DAY_OF_WEEK FROM DATE '2026-07-04'), EXTRACT(DOW FROM DATE '2026-07-05')",
    ) == [6, 7]


def test_substr_from_zero_is_empty(cursor) -> None:
    assert _one(cursor, "SELECT substr('abc', 0), substr('abc', -5), substr('abc', 2)") == [
        "",
        "",
        "bc",
    ]


def test_split_with_a_limit_keeps_the_rest_unsplit(cursor) -> None:
    # from a column: of a literal, the result's varchar(n) bound is refused
    assert _one(cursor, "SELECT split(s, ',', 2), split(s, ',', 5) FROM (VALUES 'a,b,c') t(s)") == [
        ["a", "b,c"],
        ["a", "b", "c"],
    ]


def test_split_part_beyond_the_parts_is_null(cursor) -> None:
    assert _one(cursor, "SELECT split_part('a,b', ',', 5), split_part('a,b', ',', 2)") == [
        None,
        "b",
    ]


def test_split_part_index_zero_fails(cursor) -> None:
    assert error_name_of(cursor, "SELECT split_part('a,b', ',', 0)") == "INVALID_FUNCTION_ARGUMENT"


def test_regexp_extract_without_match_is_null(cursor) -> None:
    assert _one(
        cursor,
        r"SELECT regexp_extract(s, '\d+'), regexp_extract(s || '1', '\d') FROM (VALUES 'abc') t(s)",
    ) == [None, "1"]


def test_regexp_replace_applies_dollar_group_references(cursor) -> None:
    sql = (
        r"SELECT regexp_replace(d, '(\d+)-(\d+)-(\d+)', '$3/$2/$1') FROM (VALUES '2026-01-07') t(d)"
    )
    assert _one(cursor, sql) == ["07/01/2026"]


def test_sha1_is_a_varbinary_digest(cursor) -> None:
    assert _one(cursor, "SELECT to_hex(sha1(to_utf8('abc')))") == [
        "A9993E364706816ABA3E25717850C26C9CD0D89D"
    ]


def test_sha512_is_refused(cursor) -> None:
    assert error_name_of(cursor, "SELECT sha512(to_utf8('abc'))") == "NOT_SUPPORTED"


def test_repeat_makes_an_array(cursor) -> None:
    assert _one(cursor, "SELECT repeat(7, 3)") == [[7, 7, 7]]


def test_upper_keeps_sharp_s(cursor) -> None:
    assert _one(cursor, "SELECT upper('straße')") == ["STRAßE"]


def test_format_with_string_and_integer_conversions(cursor) -> None:
    assert _one(cursor, "SELECT format('%s has %d%%', 'user 1', 42)") == ["user 1 has 42%"]


def test_cast_json_string_to_varchar_is_its_value(cursor) -> None:
    assert _one(cursor, """SELECT CAST(json_extract('{"x": "text"}', '$.x') AS varchar)""") == [
        "text"
    ]


def test_cast_anonymous_row_to_json_has_empty_keys(cursor) -> None:
    assert _one(cursor, "SELECT CAST(ROW(1, 'a') AS json)") == ['{"":1,"":"a"}']


def test_skewness_is_the_population_skewness(cursor) -> None:
    value = _one(cursor, "SELECT skewness(x) FROM (VALUES 1e0, 2e0, 4e0, 8e0, 3e0) AS t(x)")[0]
    assert value == pytest.approx(0.8978957037987333, rel=1e-12)


def test_approx_percentile_of_integers_is_bigint(cursor) -> None:
    cursor.execute("SELECT approx_percentile(x, 0.5) FROM (VALUES 1, 2, 3) AS t(x)")
    cursor.fetchall()
    assert cursor.description[0].type_code == "bigint"


def test_double_division_by_zero_is_ieee(cursor) -> None:
    inf, ninf, nan = _one(cursor, "SELECT 1e0 / 0, -1e0 / 0, 0e0 / 0")
    assert (inf, ninf, math.isnan(nan)) == (math.inf, -math.inf, True)


def test_integer_division_by_zero_fails(cursor) -> None:
    assert error_name_of(cursor, "SELECT 1 / 0") == "DIVISION_BY_ZERO"


def test_nan_equals_nothing(cursor) -> None:
    assert _one(cursor, "SELECT nan() = nan(), nan() <> nan(), nan() > 1e0") == [False, True, False]


def test_max_skips_nan(cursor) -> None:
    assert _one(cursor, "SELECT max(x), min(x) FROM (VALUES 1e0, nan(), 2e0) AS t(x)") == [2.0, 1.0]


def test_cast_double_to_integer_rounds_half_away_from_zero(cursor) -> None:
    assert _one(cursor, "SELECT CAST(2.5e0 AS bigint), CAST(-2.5e0 AS integer)") == [3, -3]


def test_sign_has_its_arguments_type(cursor) -> None:
    cursor.execute("SELECT sign(-3), sign(2.5e0)")
    assert cursor.fetchall() == [[-1, 1.0]]
    assert [d.type_code for d in cursor.description] == ["integer", "double"]


def test_bitwise_functions_are_bigint(cursor) -> None:
    cursor.execute("SELECT bitwise_and(12, 10), bitwise_xor(12, 10), bitwise_not(12)")
    assert cursor.fetchall() == [[8, 6, -13]]
    assert {d.type_code for d in cursor.description} == {"bigint"}


def test_bit_count_with_a_width(cursor) -> None:
    assert _one(cursor, "SELECT bit_count(-1, 8), bit_count(255, 64)") == [8, 8]


def test_grouping_is_an_integer(cursor) -> None:
    cursor.execute("SELECT grouping(x) FROM (VALUES 1) AS t(x) GROUP BY x")
    cursor.fetchall()
    assert cursor.description[0].type_code == "integer"


def test_sequence_counts_down_and_is_bounded(cursor) -> None:
    assert _one(cursor, "SELECT sequence(3, 1)") == [[3, 2, 1]]
    assert error_name_of(cursor, "SELECT sequence(1, 100000)") == "INVALID_FUNCTION_ARGUMENT"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT date_add('fortnight', 1, DATE '2026-01-01')",
        "SELECT element_at(ARRAY[1, 2], 0)",
        "SELECT ARRAY[1, 2][3]",
        "SELECT from_iso8601_date('2026/01/01')",
        "SELECT lpad('a', -1, 'x')",
        "SELECT repeat(7, -1)",
    ],
)
def test_invalid_arguments_fail_as_in_trino(cursor, sql: str) -> None:
    assert error_name_of(cursor, sql) == "INVALID_FUNCTION_ARGUMENT"


def test_fail_raises_a_user_error_with_its_message(cursor) -> None:
    with pytest.raises(TrinoUserError) as caught:
        cursor.execute("SELECT fail('report check failed')")
        cursor.fetchall()
    assert (caught.value.error_name, caught.value.message) == (
        "GENERIC_USER_ERROR",
        "report check failed",
    )


def test_length_of_varbinary_counts_bytes(cursor) -> None:
    assert _one(cursor, "SELECT length(X'00ff'), length(to_utf8('héllo'))") == [2, 6]


def test_current_timezone_is_the_sessions(cursor) -> None:
    assert _one(cursor, "SELECT current_timezone()") == [
        cursor.connection._client_session.timezone or "UTC"
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT width_bucket(5.3, 0.2, 10.6, 5)",
        "SELECT from_base('ff', 16)",
        "SELECT split_to_map('a=1', ',', '=')",
        "SELECT parse_datetime('2026-01-07', 'yyyy-MM-dd')",
        "SELECT CAST(1.5e0 AS varchar)",
    ],
)
def test_functions_without_a_faithful_translation_are_refused(cursor, sql: str) -> None:
    assert error_name_of(cursor, sql) == "NOT_SUPPORTED"
