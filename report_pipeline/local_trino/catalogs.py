"""The engine's catalogs: DuckDB databases attached under Trino catalog names, locked down.

Each catalog is its own DuckDB database (in memory, or a file that survives restarts). DuckDB's own
default schema `main` exists in every database but is never shown or resolved, so a session schema
that does not exist fails as in Trino instead of landing in `main`. A catalog named `memory` behaves
as Trino's memory connector does: it starts with schema `default` and cannot modify table rows.

Once the catalogs are attached, the database can no longer reach the host: no file system or
network access, no extension installs or loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from report_pipeline.local_trino.errors import TrinoError

_NAME = re.compile(r"[a-z_][a-z0-9_]*")
RESERVED_CATALOGS = frozenset({"system", "temp", "main", "information_schema", "local_trino_home"})
HIDDEN_SCHEMAS = frozenset({"main", "pg_catalog", "local_trino"})  # DuckDB's own and the engine's
# Column types DuckDB cannot hold (varchar(n): DuckDB keeps no bound), kept beside the tables
DECLARED_TYPES = '"local_trino"."declared_types"'
INFORMATION_SCHEMA = "information_schema"
_HOME = "local_trino_home"  # DuckDB's default database, so that `memory` is free for a catalog

# Set once the catalogs are attached. DuckDB refuses to turn external access and unsigned or
# community extensions back on while it runs; the auto-install and auto-load switches could only be
# flipped by a SET statement, and statements reach DuckDB only as translations of Trino's, which has
# none.
# (DuckDB's lock_configuration would also freeze the per-statement progress and time zone settings.)
_LOCKDOWN = (
    "SET GLOBAL integer_division = true",  # Trino: 5 / 2 = 2
    "SET GLOBAL autoinstall_known_extensions = false",
    "SET GLOBAL autoload_known_extensions = false",
    "SET GLOBAL allow_community_extensions = false",
    "SET GLOBAL allow_unsigned_extensions = false",
    "SET GLOBAL enable_external_access = false",
)


# The PostgreSQL connector's catalog session properties in Trino 476 (SHOW SESSION lists them).
_POSTGRESQL_SESSION_PROPERTIES = frozenset(
    {
        "aggregation_pushdown_enabled",
        "array_mapping",
        "complex_join_pushdown_enabled",
        "decimal_default_scale",
        "decimal_mapping",
        "decimal_rounding_mode",
        "domain_compaction_threshold",
        "dynamic_filtering_enabled",
        "dynamic_filtering_wait_timeout",
        "enable_string_pushdown_with_collate",
        "join_pushdown_automatic_max_join_to_tables_ratio",
        "join_pushdown_automatic_max_table_size",
        "join_pushdown_enabled",
        "join_pushdown_strategy",
        "non_transactional_insert",
        "non_transactional_merge",
        "topn_pushdown_enabled",
        "unsupported_type_handling",
        "write_batch_size",
        "write_parallelism",
    }
)


@dataclass(frozen=True)
class CatalogSpec:
    """One catalog: its Trino name and, optionally, the DuckDB file that holds it."""

    name: str
    path: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"invalid catalog name {self.name!r}: use lower-case letters, digits and _"
            )
        if self.name in RESERVED_CATALOGS:
            raise ValueError(f"catalog name {self.name!r} is reserved")

    @classmethod
    def parse(cls, text: str) -> CatalogSpec:
        """`NAME` (in memory) or `NAME=PATH` (a DuckDB file), as `--catalog` takes it."""
        name, _, path = text.partition("=")
        return cls(name.strip(), path.strip() or None)

    @property
    def connector(self) -> str:
        # any other catalog stands in for Trino's PostgreSQL connector (the deployment's `lake`)
        return "memory" if self.name == "memory" else "postgresql"

    @property
    def session_properties(self) -> frozenset[str]:
        """The catalog session properties (`catalog.name`) Trino's connector defines; memory has
        none."""
        return _POSTGRESQL_SESSION_PROPERTIES if self.connector == "postgresql" else frozenset()

    @property
    def initial_schemas(self) -> tuple[str, ...]:
        return ("default",) if self.connector == "memory" else ()

    @property
    def modifies_rows(self) -> bool:
        """Whether DELETE, UPDATE and MERGE work (Trino's memory connector refuses them)."""
        return self.connector != "memory"


def open_database(catalogs: list[CatalogSpec]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with every catalog attached and the host locked away."""
    names = [c.name for c in catalogs]
    if not names:
        raise ValueError("at least one catalog is needed")
    if len(set(names)) != len(names):
        raise ValueError(f"catalog names must be unique: {', '.join(names)}")
    connection = duckdb.connect(":memory:")
    connection.execute(f"ATTACH ':memory:' AS \"{_HOME}\"")
    connection.execute(f'USE "{_HOME}"')
    connection.execute("DETACH memory")  # DuckDB's default database is called memory
    for catalog in catalogs:
        target = (catalog.path or ":memory:").replace("'", "''")
        connection.execute(f"ATTACH '{target}' AS \"{catalog.name}\"")  # names validated above
        for schema in catalog.initial_schemas:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog.name}"."{schema}"')
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog.name}"."local_trino"')
        connection.execute(
            f'CREATE TABLE IF NOT EXISTS "{catalog.name}".{DECLARED_TYPES} (schema_name VARCHAR, '
            "table_name VARCHAR, column_name VARCHAR, trino_type VARCHAR)"
        )
    for statement in _LOCKDOWN:
        connection.execute(statement)
    return connection


class Catalogs:
    """What the attached databases hold, as Trino shows it (catalog-scoped, DuckDB's schemas
    hidden)."""

    hidden_schemas = HIDDEN_SCHEMAS

    def __init__(self, database: duckdb.DuckDBPyConnection, specs: list[CatalogSpec]):
        self._db = database
        self.specs = {spec.name: spec for spec in specs}
        self.default = specs[0].name

    def _fetch(self, sql: str, parameters: list) -> list[tuple]:
        with self._db.cursor() as cursor:
            return cursor.execute(sql, parameters).fetchall()

    @property
    def names(self) -> list[str]:
        return sorted(self.specs)

    def spec(self, catalog: str) -> CatalogSpec:
        spec = self.specs.get(catalog.lower())
        if spec is None:
            raise TrinoError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' not found")
        return spec

    def schemas(self, catalog: str) -> list[str]:
        rows = self._fetch(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ?", [catalog]
        )
        return sorted([r[0] for r in rows if r[0] not in HIDDEN_SCHEMAS] + [INFORMATION_SCHEMA])

    def schema_exists(self, catalog: str, schema: str) -> bool:
        return catalog in self.specs and schema in self.schemas(catalog)

    def tables(self, catalog: str) -> list[tuple[str, str, str, str | None]]:
        """(schema, table, 'BASE TABLE' | 'VIEW', comment) of every table and view in a catalog."""
        rows = self._fetch(
            "SELECT schema_name, table_name, 'BASE TABLE', comment FROM duckdb_tables() "
            "WHERE database_name = ? "
            "UNION ALL SELECT schema_name, view_name, 'VIEW', comment FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal ORDER BY 1, 2",
            [catalog, catalog],
        )
        return [r for r in rows if r[0] not in HIDDEN_SCHEMAS]

    def columns(self, catalog: str) -> list[tuple]:
        """(schema, table, column, position, default, nullable, DuckDB type, comment) of a
        catalog."""
        rows = self._fetch(
            "SELECT schema_name, table_name, column_name, column_index, column_default, "
            "is_nullable, data_type, "
            "comment FROM duckdb_columns() WHERE database_name = ? ORDER BY 1, 2, 4",
            [catalog],
        )
        return [r for r in rows if r[0] not in HIDDEN_SCHEMAS]

    def views(self, catalog: str) -> list[tuple[str, str, str]]:
        rows = self._fetch(
            "SELECT schema_name, view_name, sql FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal",
            [catalog],
        )
        return [r for r in rows if r[0] not in HIDDEN_SCHEMAS]

    def table_exists(self, catalog: str, schema: str, table: str) -> bool:
        return bool(
            self._fetch(
                "SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
                "AND table_name = ?",
                [catalog, schema, table],
            )
        )

    def table_size(self, catalog: str, schema: str, table: str) -> tuple[int, int]:
        """(rows, columns) of a table, (0, 0) when it is not one."""
        found = self._fetch(
            "SELECT estimated_size, column_count FROM duckdb_tables() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [catalog, schema, table],
        )
        return found[0] if found else (0, 0)

    # --- declared column types (varchar(n)) -------------------------------------------------------
    def declared_types(self, catalog: str) -> dict[tuple[str, str, str], str]:
        """(schema, table, column) -> the Trino type a table was declared with, where DuckDB's
        differs."""
        rows = self._fetch(
            "SELECT schema_name, table_name, column_name, trino_type "
            f'FROM "{catalog}".{DECLARED_TYPES}',
            [],
        )
        return {(s, t, c): ty for s, t, c, ty in rows}

    def declare(
        self, catalog: str, schema: str, table: str, types: dict[str, str], replace: bool
    ) -> None:
        """Record a table's declared column types (all of them anew when `replace`)."""
        with self._db.cursor() as cursor:
            if replace:
                cursor.execute(
                    f'DELETE FROM "{catalog}".{DECLARED_TYPES} '
                    "WHERE schema_name = ? AND table_name = ?",
                    [schema, table],
                )
            for column, trino_type in types.items():
                cursor.execute(
                    f'DELETE FROM "{catalog}".{DECLARED_TYPES} '
                    "WHERE schema_name = ? AND table_name = ? AND column_name = ?",
                    [schema, table, column],
                )
                cursor.execute(
                    f'INSERT INTO "{catalog}".{DECLARED_TYPES} VALUES (?, ?, ?, ?)',
                    [schema, table, column, trino_type],
                )

    def forget(
        self, catalog: str, schema: str, table: str | None = None, column: str | None = None
    ) -> None:
        """Drop the record of a schema's, a table's or a column's declared types."""
        sql, parameters = (
            f'DELETE FROM "{catalog}".{DECLARED_TYPES} WHERE schema_name = ?',
            [schema],
        )
        for name, value in (("table_name", table), ("column_name", column)):
            if value is not None:
                sql, parameters = sql + f" AND {name} = ?", [*parameters, value]
        with self._db.cursor() as cursor:
            cursor.execute(sql, parameters)

    def rename(
        self,
        catalog: str,
        schema: str,
        table: str,
        *,
        new_schema: str | None = None,
        new_table: str | None = None,
        column: str | None = None,
        new_column: str | None = None,
    ) -> None:
        """Follow a renamed table or column."""
        with self._db.cursor() as cursor:
            if column is not None:
                cursor.execute(
                    f'UPDATE "{catalog}".{DECLARED_TYPES} SET column_name = ? '
                    "WHERE schema_name = ? AND table_name = ? AND column_name = ?",
                    [new_column, schema, table, column],
                )
            else:
                cursor.execute(
                    f'UPDATE "{catalog}".{DECLARED_TYPES} SET schema_name = ?, table_name = ? '
                    "WHERE schema_name = ? AND table_name = ?",
                    [new_schema or schema, new_table, schema, table],
                )
