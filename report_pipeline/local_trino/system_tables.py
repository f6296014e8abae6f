"""Trino's `system` catalog and each catalog's `information_schema`, answered from snapshots.

DuckDB's own information_schema spans every attached database and shows its internal schemas, so
the engine builds Trino's tables itself (columns and types as Trino 476 has them) and puts them
into the statement as a SELECT over literal rows.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import duckdb
from sqlglot import exp

from report_pipeline.local_trino.catalogs import INFORMATION_SCHEMA
from report_pipeline.local_trino.errors import TrinoError
from report_pipeline.local_trino.types import trino_type

if TYPE_CHECKING:
    from report_pipeline.local_trino.engine import Engine

Columns = list[tuple[str, str]]  # (name, DuckDB type)
Snapshot = tuple[Columns, list[tuple]]


def values_table(columns: Columns, rows: list[tuple]) -> exp.Select:
    """A SELECT over literal rows with typed columns; an empty one when there are no rows."""
    aliases = [exp.to_identifier(f"c{i}") for i in range(len(columns))]
    data = rows or [tuple(None for _ in columns)]
    values = exp.Values(
        expressions=[exp.Tuple(expressions=[exp.convert(v) for v in row]) for row in data],
        alias=exp.TableAlias(this=exp.to_identifier("v"), columns=aliases),
    )
    casts = [
        exp.cast(exp.column(alias), exp.DataType.build(type_, dialect="duckdb"))
        for alias, (_, type_) in zip(aliases, columns, strict=True)
    ]
    for cast in casts:
        # DuckDB types chosen by the engine, not Trino SQL to translate
        cast.meta["engine_typed"] = True
    select = exp.select(
        *[cast.as_(name, quoted=True) for cast, (name, _) in zip(casts, columns, strict=True)]
    )
    select = select.from_(values)
    return select if rows else select.where(exp.false())


def _varchars(*names: str) -> Columns:
    return [(name, "VARCHAR") for name in names]


def trino_type_name(duck_type: str) -> str:
    """A column's type as metadata spells it (`decimal(12,2)`: without the space of result
    columns)."""
    try:
        return (
            trino_type(duckdb.sqltype(duck_type))
            .name.replace(", ", ",")
            .replace("INTERVAL DAY TO SECOND", "interval day to second")
        )
    except (TrinoError, duckdb.Error):
        return duck_type.lower()


# --- information_schema, one catalog's ------------------------------------------------------------

_INFORMATION_SCHEMA_TABLES = (
    "applicable_roles",
    "columns",
    "enabled_roles",
    "roles",
    "schemata",
    "table_privileges",
    "tables",
    "views",
)


def _schemata(engine: Engine, catalog: str) -> Snapshot:
    return _varchars("catalog_name", "schema_name"), [
        (catalog, s) for s in engine.catalogs.schemas(catalog)
    ]


def _tables(engine: Engine, catalog: str) -> Snapshot:
    rows = [(catalog, s, t, kind) for s, t, kind, _ in engine.catalogs.tables(catalog)]
    rows += [(catalog, INFORMATION_SCHEMA, t, "BASE TABLE") for t in _INFORMATION_SCHEMA_TABLES]
    return _varchars("table_catalog", "table_schema", "table_name", "table_type"), rows


def _columns(engine: Engine, catalog: str, hidden: bool = False) -> Snapshot:
    """`hidden`: with Trino's hidden `comment` column (not in SELECT *; SQLAlchemy's reflection
    names it)."""
    declared = engine.catalogs.declared_types(catalog)  # varchar(n), which DuckDB keeps as varchar
    rows = [
        (
            catalog,
            s,
            t,
            c,
            i,
            d,
            "YES" if n else "NO",
            declared.get((s, t, c)) or trino_type_name(ty),
            *([comment] if hidden else []),
        )
        for s, t, c, i, d, n, ty, comment in engine.catalogs.columns(catalog)
    ]
    return (
        [
            ("table_catalog", "VARCHAR"),
            ("table_schema", "VARCHAR"),
            ("table_name", "VARCHAR"),
            ("column_name", "VARCHAR"),
            ("ordinal_position", "BIGINT"),
            ("column_default", "VARCHAR"),
            ("is_nullable", "VARCHAR"),
            ("data_type", "VARCHAR"),
            *([("comment", "VARCHAR")] if hidden else []),
        ],
        rows,
    )


def _views(engine: Engine, catalog: str) -> Snapshot:
    return (
        _varchars("table_catalog", "table_schema", "table_name", "view_definition"),
        [(catalog, *r) for r in engine.catalogs.views(catalog)],
    )


def _empty(*names: str) -> Callable[[Engine, str], Snapshot]:
    return lambda engine, catalog: (_varchars(*names), [])


INFORMATION_SCHEMA_TABLES: dict[str, Callable[[Engine, str], Snapshot]] = {
    "schemata": _schemata,
    "tables": _tables,
    "columns": _columns,
    "views": _views,
    # no roles or grants: every user may do everything, as with Trino's default access control
    "applicable_roles": _empty("grantee", "grantee_type", "role_name", "is_grantable"),
    "enabled_roles": _empty("role_name"),
    "roles": _empty("role_name"),
    "table_privileges": _empty(
        "grantor",
        "grantor_type",
        "grantee",
        "grantee_type",
        "table_catalog",
        "table_schema",
        "table_name",
        "privilege_type",
        "is_grantable",
        "with_hierarchy",
    ),
}


# --- the system catalog ---------------------------------------------------------------------------


def _timestamp(value: float | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value, dt.UTC)


def _runtime_queries(engine: Engine) -> Snapshot:
    rows = []
    for q in engine.queries():
        started = q.started
        rows.append(
            (
                q.id,
                q.state.value,
                q.session.user,
                q.session.source,
                q.sql,
                None,
                int(((started or q.ended or time.time()) - q.created) * 1000),
                0,
                0,
                _timestamp(q.created),
                _timestamp(started),
                _timestamp(q.last_heartbeat),
                _timestamp(q.ended),
                q.error.error.type.value if q.error else None,
                q.error.name if q.error else None,
            )
        )
    return (
        [
            ("query_id", "VARCHAR"),
            ("state", "VARCHAR"),
            ("user", "VARCHAR"),
            ("source", "VARCHAR"),
            ("query", "VARCHAR"),
            ("resource_group_id", "VARCHAR[]"),
            ("queued_time_ms", "BIGINT"),
            ("analysis_time_ms", "BIGINT"),
            ("planning_time_ms", "BIGINT"),
            ("created", "TIMESTAMPTZ"),
            ("started", "TIMESTAMPTZ"),
            ("last_heartbeat", "TIMESTAMPTZ"),
            ("end", "TIMESTAMPTZ"),
            ("error_type", "VARCHAR"),
            ("error_code", "VARCHAR"),
        ],
        rows,
    )


def _runtime_nodes(engine: Engine) -> Snapshot:
    return (
        [
            ("node_id", "VARCHAR"),
            ("http_uri", "VARCHAR"),
            ("node_version", "VARCHAR"),
            ("coordinator", "BOOLEAN"),
            ("state", "VARCHAR"),
        ],
        [(engine.node_id, engine.http_uri, engine.version, True, "active")],
    )


def _runtime_transactions(engine: Engine) -> Snapshot:
    rows: list[tuple] = [
        (
            t.id,
            t.isolation_level,
            t.read_only,
            False,
            _timestamp(t.created),
            int(time.time() - t.last_used),
            None,
            [],
        )
        for t in engine.transactions.list()
    ]
    return (
        [
            ("transaction_id", "VARCHAR"),
            ("isolation_level", "VARCHAR"),
            ("read_only", "BOOLEAN"),
            ("auto_commit_context", "BOOLEAN"),
            ("create_time", "TIMESTAMPTZ"),
            ("idle_time_secs", "BIGINT"),
            ("written_catalog", "VARCHAR"),
            ("catalogs", "VARCHAR[]"),
        ],
        rows,
    )


def _metadata_catalogs(engine: Engine) -> Snapshot:
    rows = [("system", "system", "system")]
    rows += [(name, name, engine.catalogs.spec(name).connector) for name in engine.catalogs.names]
    return _varchars("catalog_name", "connector_id", "connector_name"), rows


def _table_comments(engine: Engine) -> Snapshot:
    return (
        _varchars("catalog_name", "schema_name", "table_name", "comment"),
        [
            (c, s, t, comment)
            for c in engine.catalogs.names
            for s, t, _, comment in engine.catalogs.tables(c)
        ],
    )


def _jdbc_catalogs(engine: Engine) -> Snapshot:
    return _varchars("table_cat"), [(name,) for name in ["system", *engine.catalogs.names]]


def _jdbc_schemas(engine: Engine) -> Snapshot:
    return (
        _varchars("table_schem", "table_catalog"),
        [(s, c) for c in engine.catalogs.names for s in engine.catalogs.schemas(c)],
    )


def _jdbc_table_types(engine: Engine) -> Snapshot:
    return _varchars("table_type"), [("TABLE",), ("VIEW",)]


_PROPERTIES = _varchars("catalog_name", "property_name", "default_value", "type", "description")
SYSTEM_TABLES: dict[tuple[str, str], Callable[[Engine], Snapshot]] = {
    ("runtime", "queries"): _runtime_queries,
    ("runtime", "nodes"): _runtime_nodes,
    ("runtime", "transactions"): _runtime_transactions,
    # the engine keeps no per-task or optimizer statistics
    ("runtime", "tasks"): lambda engine: (
        [
            *_varchars("node_id", "task_id", "stage_id", "query_id", "state"),
            *[
                (c, "BIGINT")
                for c in (
                    "splits",
                    "queued_splits",
                    "running_splits",
                    "completed_splits",
                    "split_scheduled_time_ms",
                    "split_cpu_time_ms",
                    "split_blocked_time_ms",
                    "raw_input_bytes",
                    "raw_input_rows",
                    "processed_input_bytes",
                    "processed_input_rows",
                    "output_bytes",
                    "output_rows",
                    "physical_input_bytes",
                    "physical_written_bytes",
                )
            ],
            *[(c, "TIMESTAMPTZ") for c in ("created", "start", "last_heartbeat", "end")],
        ],
        [],
    ),
    ("runtime", "optimizer_rule_stats"): lambda engine: (
        [
            ("rule_name", "VARCHAR"),
            ("invocations", "BIGINT"),
            ("matches", "BIGINT"),
            ("failures", "BIGINT"),
            ("average_time", "DOUBLE"),
            ("time_distribution_percentiles", "MAP(DOUBLE, DOUBLE)"),
        ],
        [],
    ),
    ("metadata", "catalogs"): _metadata_catalogs,
    ("metadata", "table_comments"): _table_comments,
    # the local catalogs take no properties
    ("metadata", "schema_properties"): lambda engine: (_PROPERTIES, []),
    ("metadata", "table_properties"): lambda engine: (_PROPERTIES, []),
    ("metadata", "column_properties"): lambda engine: (_PROPERTIES, []),
    ("metadata", "analyze_properties"): lambda engine: (_PROPERTIES, []),
    ("metadata", "materialized_view_properties"): lambda engine: (_PROPERTIES, []),
    ("metadata", "materialized_views"): lambda engine: (
        [
            *_varchars(
                "catalog_name",
                "schema_name",
                "name",
                "storage_catalog",
                "storage_schema",
                "storage_table",
                "freshness",
            ),
            ("last_fresh_time", "TIMESTAMPTZ"),
            *_varchars("comment", "definition"),
        ],
        [],
    ),
    ("jdbc", "catalogs"): _jdbc_catalogs,
    ("jdbc", "schemas"): _jdbc_schemas,
    ("jdbc", "table_types"): _jdbc_table_types,
}
SYSTEM_SCHEMAS = ("information_schema", "jdbc", "metadata", "runtime")


def system_tables_of(schema: str) -> list[str]:
    if schema == INFORMATION_SCHEMA:
        return sorted(INFORMATION_SCHEMA_TABLES)
    return sorted(t for s, t in SYSTEM_TABLES if s == schema)


# Trino's system.jdbc tables the engine does not serve (JDBC drivers' metadata)
_UNSERVED = {
    ("jdbc", t)
    for t in (
        "attributes",
        "columns",
        "procedure_columns",
        "procedures",
        "pseudo_columns",
        "super_tables",
        "super_types",
        "tables",
        "types",
        "udts",
    )
}


def snapshot(
    engine: Engine, catalog: str, schema: str, table: str, hidden: bool = False
) -> Snapshot | None:
    """The rows of a system or information_schema table; None for a table DuckDB holds. `hidden`:
    with the hidden columns the statement names."""
    if catalog == "system" and schema != INFORMATION_SCHEMA:
        build = SYSTEM_TABLES.get((schema, table))
        if build is None:
            if schema not in SYSTEM_SCHEMAS:
                raise TrinoError("SCHEMA_NOT_FOUND", f"Schema '{schema}' does not exist")
            if (schema, table) in _UNSERVED:
                raise TrinoError(
                    "NOT_SUPPORTED",
                    f"Table system.{schema}.{table} is not supported by the local engine",
                )
            raise TrinoError(
                "TABLE_NOT_FOUND", f"Table '{catalog}.{schema}.{table}' does not exist"
            )
        return build(engine)
    if schema != INFORMATION_SCHEMA:
        return None
    build_one = INFORMATION_SCHEMA_TABLES.get(table)
    if build_one is None:
        raise TrinoError("TABLE_NOT_FOUND", f"Table '{catalog}.{schema}.{table}' does not exist")
    if catalog == "system":
        # system.information_schema describes the system catalog's own tables
        columns, _ = build_one(engine, catalog)
        return columns, _system_information_schema(table)
    if build_one is _columns:
        return _columns(engine, catalog, hidden)
    return build_one(engine, catalog)


def _system_information_schema(table: str) -> list[tuple]:
    if table == "schemata":
        return [("system", s) for s in SYSTEM_SCHEMAS]
    if table == "tables":
        return [("system", s, t, "BASE TABLE") for s in SYSTEM_SCHEMAS for t in system_tables_of(s)]
    return []
