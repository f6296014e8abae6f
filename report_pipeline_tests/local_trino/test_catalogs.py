"""Several catalogs, each its own DuckDB database: names, schemas and metadata as Trino shows
them."""

from __future__ import annotations

import secrets

import pytest
import trino

from report_pipeline.local_trino import CatalogSpec, LocalTrino
from report_pipeline_tests.local_trino import error_name_of


def _rows(cursor, sql: str) -> list:
    cursor.execute(sql)
    return cursor.fetchall()


@pytest.fixture
def memory_table(cursor):
    name = f"memory.default.t_{secrets.token_hex(4)}"
    _rows(
        cursor, f"CREATE TABLE {name} AS SELECT id, country FROM lake.analytics.users WHERE id < 5"
    )
    yield name
    _rows(cursor, f"DROP TABLE IF EXISTS {name}")


def test_memory_catalog_starts_with_schema_default_only(cursor) -> None:
    assert _rows(cursor, "SHOW SCHEMAS FROM memory") == [["default"], ["information_schema"]]


def test_duckdbs_own_main_schema_is_never_shown_nor_resolved(cursor) -> None:
    assert "main" not in {row[0] for row in _rows(cursor, "SHOW SCHEMAS FROM lake")}
    assert error_name_of(cursor, "SELECT * FROM lake.main.anything") == "SCHEMA_NOT_FOUND"
    assert error_name_of(cursor, "CREATE SCHEMA lake.main") == "NOT_SUPPORTED"


def test_a_session_schema_that_does_not_exist_fails_as_in_trino(connect) -> None:
    cursor = connect(schema="default").cursor()  # lake has no schema `default`
    assert error_name_of(cursor, "SELECT * FROM t") == "SCHEMA_NOT_FOUND"
    assert error_name_of(cursor, "CREATE TABLE t (x integer)") == "NOT_FOUND"
    assert _rows(cursor, "SELECT 1") == [[1]]


def test_three_part_names_join_across_catalogs(cursor, memory_table) -> None:
    rows = _rows(
        cursor,
        f"SELECT m.id, u.plan FROM {memory_table} m JOIN lake.analytics.users u ON m.id = u.id "
        "ORDER BY m.id",
    )
    assert [row[0] for row in rows] == [0, 1, 2, 3, 4]


def test_memory_catalog_cannot_modify_rows_like_trinos_memory_connector(
    cursor, memory_table
) -> None:
    for sql in (
        f"DELETE FROM {memory_table} WHERE id = 1",
        f"UPDATE {memory_table} SET country = 'x'",
    ):
        assert error_name_of(cursor, sql) == "NOT_SUPPORTED"
    assert _rows(cursor, f"SELECT count(*) FROM {memory_table}") == [[5]]


def test_information_schema_is_scoped_to_its_catalog(cursor, memory_table) -> None:
    table = memory_table.rsplit(".", 1)[1]
    memory_tables = _rows(
        cursor,
        "SELECT table_schema, table_name FROM memory.information_schema.tables "
        "WHERE table_schema <> 'information_schema'",
    )
    assert memory_tables == [["default", table]]
    lake_schemas = {
        row[0] for row in _rows(cursor, "SELECT schema_name FROM lake.information_schema.schemata")
    }
    assert lake_schemas == {"analytics", "information_schema", "reports", "scratch"}


def test_system_runtime_nodes_lists_the_engine_as_an_active_coordinator(
    local_trino, cursor
) -> None:
    [[node_id, uri, version, coordinator, state]] = _rows(
        cursor, "SELECT * FROM system.runtime.nodes"
    )
    assert (uri, coordinator, state) == (local_trino.url, True, "active")
    assert node_id and version == _rows(cursor, "SELECT version()")[0][0]


def test_system_metadata_catalogs_names_each_catalogs_connector(cursor) -> None:
    rows = _rows(
        cursor, "SELECT catalog_name, connector_name FROM system.metadata.catalogs ORDER BY 1"
    )
    assert rows == [["lake", "postgresql"], ["memory", "memory"], ["system", "system"]]


def test_describe_lists_columns_with_their_trino_types(cursor) -> None:
    assert _rows(cursor, "DESCRIBE lake.analytics.users") == [
        ["id", "bigint", "", ""],
        ["country", "varchar", "", ""],
        ["signup_date", "date", "", ""],
        ["plan", "varchar", "", ""],
    ]


def test_a_catalog_kept_in_a_file_survives_a_restart(tmp_path) -> None:
    archive = CatalogSpec("archive", str(tmp_path / "archive.duckdb"))
    with LocalTrino(sample_events=100, catalogs=[archive]) as engine:
        with trino.dbapi.connect(host=engine.host, port=engine.port, user="t") as connection:
            _rows(connection.cursor(), "CREATE SCHEMA archive.kept")
            _rows(connection.cursor(), "CREATE TABLE archive.kept.t AS SELECT 42 AS answer")
        engine.restart()
        with trino.dbapi.connect(host=engine.host, port=engine.port, user="t") as connection:
            assert _rows(connection.cursor(), "SELECT answer FROM archive.kept.t") == [[42]]


@pytest.mark.parametrize("name", ["system", "information_schema", "Lake", "two words"])
def test_unusable_catalog_names_are_refused_before_anything_starts(name) -> None:
    with pytest.raises(ValueError, match="catalog name"):
        CatalogSpec(name)
