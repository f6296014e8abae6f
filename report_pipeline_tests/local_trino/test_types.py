"""Every Trino type the engine returns round-trips through the client with its full signature."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from report_pipeline.local_trino import LocalTrino


@pytest.mark.parametrize(
    ("expression", "type_name", "value"),
    [
        ("true", "boolean", True),
        ("CAST(7 AS tinyint)", "tinyint", 7),
        ("CAST(7 AS smallint)", "smallint", 7),
        ("CAST(7 AS integer)", "integer", 7),
        ("CAST(7 AS bigint)", "bigint", 7),
        ("REAL '1.5'", "real", 1.5),
        ("DOUBLE '2.25'", "double", 2.25),
        ("CAST('Infinity' AS double)", "double", float("inf")),
        ("CAST(12.345 AS decimal(10, 3))", "decimal(10, 3)", Decimal("12.345")),
        ("'text'", "varchar(4)", "text"),  # a string literal is bounded by its length, as in Trino
        ("DATE '2026-02-28'", "date", dt.date(2026, 2, 28)),
        (
            "TIMESTAMP '2026-02-28 13:14:15.123456'",
            "timestamp(6)",
            dt.datetime(2026, 2, 28, 13, 14, 15, 123456),
        ),
        ("TIME '13:14:15.500000'", "time(6)", dt.time(13, 14, 15, 500000)),
        ("X'0102ff'", "varbinary", b"\x01\x02\xff"),
        ("ARRAY[1, 2, 3]", "array(integer)", [1, 2, 3]),
        ("MAP(ARRAY[7], ARRAY[1])", "map(integer, integer)", {7: 1}),
        ("CAST(NULL AS varchar)", "varchar", None),
    ],
)
def test_value_round_trips_with_its_type(
    cursor, expression: str, type_name: str, value: object
) -> None:
    cursor.execute(f"SELECT {expression} AS v")
    assert cursor.fetchall() == [[value]]
    assert cursor.description[0].type_code == type_name


def test_row_values_become_named_tuples(cursor) -> None:
    cursor.execute("SELECT CAST(ROW(1, 'a') AS ROW(x integer, y varchar)) AS r")
    value = cursor.fetchone()[0]
    assert (value.x, value.y) == (1, "a")


def test_timestamp_with_time_zone_carries_the_session_zone(connect) -> None:
    cursor = connect(timezone="Europe/Paris").cursor()
    cursor.execute("SELECT TIMESTAMP '2026-01-01 12:00:00 UTC' AS t")
    value = cursor.fetchone()[0]
    assert value == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    # the literal's precision
    assert cursor.description[0].type_code == "timestamp(0) with time zone"


def test_decimal_description_has_precision_and_scale(cursor) -> None:
    cursor.execute("SELECT CAST(1 AS decimal(18, 4)) AS d")
    column = cursor.description[0]
    assert (column.precision, column.scale) == (18, 4)


def test_bigint_sum_that_overflows_fails_like_trino(cursor) -> None:
    import trino

    with pytest.raises(trino.exceptions.TrinoUserError) as raised:
        cursor.execute("SELECT sum(x) FROM (VALUES (9223372036854775807), (1)) t(x)")
        cursor.fetchall()
    assert raised.value.error_name == "NUMERIC_VALUE_OUT_OF_RANGE"


def test_integer_division_truncates_as_in_trino(cursor) -> None:
    cursor.execute("SELECT 5 / 2, -5 / 2, 7 % 3")
    assert cursor.fetchall() == [[2, -2, 1]]


def test_sqlalchemy_reflects_tables_and_column_types(local_trino: LocalTrino) -> None:
    engine = sa.create_engine(
        f"trino://tester@{local_trino.host}:{local_trino.port}/{local_trino.catalog}/analytics"
    )
    inspector = sa.inspect(engine)
    assert {"analytics", "scratch", "reports"} <= set(inspector.get_schema_names())
    assert set(inspector.get_table_names("analytics")) == {"events", "users"}
    columns = {c["name"]: c["type"] for c in inspector.get_columns("events", "analytics")}
    assert isinstance(columns["event_id"], sa.BigInteger)
    assert isinstance(columns["event_date"], sa.Date)
    assert isinstance(columns["event_type"], sa.String)
    engine.dispose()


def test_sqlalchemy_query_with_bound_parameters(local_trino: LocalTrino) -> None:
    engine = sa.create_engine(
        f"trino://tester@{local_trino.host}:{local_trino.port}/{local_trino.catalog}/analytics"
    )
    with engine.connect() as connection:
        count = connection.execute(
            sa.text("SELECT count(*) FROM users WHERE country = :country"), {"country": "DE"}
        ).scalar_one()
    engine.dispose()
    assert count > 0


def test_a_declared_varchar_bound_is_kept_for_describe_information_schema_and_results(
    connect,
) -> None:
    cursor = connect().cursor()
    cursor.execute("CREATE TABLE scratch.bounded (id bigint, label varchar(20))")
    try:
        cursor.execute("INSERT INTO scratch.bounded VALUES (1, 'one')")
        cursor.fetchall()
        cursor.execute("DESCRIBE scratch.bounded")
        assert [row[:2] for row in cursor.fetchall()] == [
            ["id", "bigint"],
            ["label", "varchar(20)"],
        ]
        cursor.execute(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'bounded' "
            "AND column_name = 'label'"
        )
        assert cursor.fetchall() == [["varchar(20)"]]
        cursor.execute("SELECT label AS l FROM scratch.bounded")
        assert (cursor.fetchall(), cursor.description[0].type_code) == ([["one"]], "varchar(20)")
        cursor.execute("ALTER TABLE scratch.bounded RENAME COLUMN label TO tag")
        cursor.execute("SELECT * FROM scratch.bounded")
        cursor.fetchall()
        assert [c.type_code for c in cursor.description] == ["bigint", "varchar(20)"]
    finally:
        cursor.execute("DROP TABLE scratch.bounded")


def test_create_table_if_not_exists_of_an_existing_table_keeps_its_column_types(cursor) -> None:
    cursor.execute("CREATE TABLE IF NOT EXISTS analytics.users AS SELECT 'x' AS country")
    assert cursor.fetchall() == [[0]]
    cursor.execute("SELECT country FROM analytics.users LIMIT 1")
    cursor.fetchall()
    assert cursor.description[0].type_code == "varchar"
