"""SQL sent to the local engine cannot reach the host: files, the network, extensions, settings."""

from __future__ import annotations

import pytest

from report_pipeline_tests.local_trino import error_name_of


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM read_text('/etc/shadow')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        "SELECT * FROM TABLE(read_text('/proc/self/environ'))",
    ],
)
def test_file_and_network_table_functions_are_not_tables_trino_knows(cursor, sql) -> None:
    assert error_name_of(cursor, sql) in ("SYNTAX_ERROR", "FUNCTION_NOT_FOUND")


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT read_text('/etc/passwd')",
        "SELECT getenv('PGPASSWORD')",
        "SELECT current_setting('enable_external_access')",
    ],
)
def test_duckdb_only_functions_are_not_registered(cursor, sql) -> None:
    assert error_name_of(cursor, sql) == "FUNCTION_NOT_FOUND"


@pytest.mark.parametrize(
    "sql",
    [
        "SET enable_external_access = true",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '/tmp/other.duckdb' AS other",
        "COPY events TO '/tmp/events.csv'",
        "PRAGMA enable_external_access",
        "EXPORT DATABASE '/tmp/dump'",
    ],
)
def test_duckdb_statements_never_reach_duckdb(cursor, sql) -> None:
    assert error_name_of(cursor, sql) in ("SYNTAX_ERROR", "NOT_SUPPORTED")


def test_the_database_itself_refuses_the_file_system_and_extension_installs(local_trino) -> None:
    # defence in depth: even SQL that got past translation could not read a file or install anything
    import duckdb

    engine = local_trino.engine
    with pytest.raises(duckdb.PermissionException):
        engine.fetch("SELECT * FROM read_text('/etc/passwd')")
    with pytest.raises(duckdb.PermissionException):
        engine.fetch("INSTALL httpfs")
    with pytest.raises(duckdb.InvalidInputException):
        engine.fetch("SET enable_external_access = true")
    settings = dict(
        engine.fetch(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('autoinstall_known_extensions', 'autoload_known_extensions', "
            "'allow_community_extensions', 'enable_external_access')"
        )
    )
    assert set(settings.values()) == {"false"}


def test_a_file_or_url_named_as_a_table_is_denied_not_read(cursor) -> None:
    # DuckDB would scan a file named like a table; with host access off it refuses, as a user error
    assert error_name_of(cursor, 'SELECT * FROM "https://example.com/x.parquet"') in (
        "PERMISSION_DENIED",
        "TABLE_NOT_FOUND",
    )
    assert error_name_of(cursor, "SELECT * FROM '/etc/passwd'") in (
        "PERMISSION_DENIED",
        "SYNTAX_ERROR",
        "TABLE_NOT_FOUND",
    )
