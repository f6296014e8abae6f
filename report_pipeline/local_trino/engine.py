"""The engine behind the HTTP protocol: a DuckDB database presented as one Trino catalog.

Each statement gets its own DuckDB connection (a cursor of the shared database) and runs on a
worker thread, so a slow statement never blocks another and a cancel interrupts exactly it.
A housekeeping thread enforces `query_max_run_time`, abandons statements nobody polls, and
expires finished ones from the history, as a Trino coordinator does.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import quote_plus
import duckdb
from sqlglot import exp

from report_pipeline.local_trino import dialect
from report_pipeline.local_trino.errors import TrinoError, from_duckdb
from report_pipeline.local_trino.faults import FaultInjector
from report_pipeline.local_trino.query import Query, QueryState, Result, Session, _Stopped
from report_pipeline.local_trino.types import column_json, row_encoder, trino_type

log = logging.getLogger(__name__)

# Session properties the engine accepts. Catalog properties (`catalog.name`) are accepted as-is.
SESSION_PROPERTIES = {
    "query_max_run_time", "query_max_execution_time", "join_distribution_type",
    "query_priority", "task_concurrency", "enable_dynamic_filtering",
}
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]*|[+-]\d{2}:\d{2}")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class EngineConfig:
    catalog: str = "lake"
    max_running_queries: int = 32
    client_timeout_seconds: float = 300.0    # Trino's query.client.timeout
    expire_after_seconds: float = 900.0      # Trino's query.min-expire-age
    page_rows: int = 20_000


def parse_duration(text: str) -> float:
    """Trino's duration syntax (`30s`, `1.5m`, `2h`) in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text)
    if not match or match.group(2) not in _DURATION_UNITS:
        raise TrinoError("INVALID_SESSION_PROPERTY", f"Invalid duration: {text!r} (use e.g. 30s, 5m, 1h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Engine:
    def __init__(self, database: duckdb.DuckDBPyConnection, config: EngineConfig = EngineConfig()):
        self.config = config
        self.catalog = config.catalog
        self.faults = FaultInjector()
        self._db = database
        self._db.execute("SET GLOBAL integer_division = true")      # Trino: 5 / 2 = 2
        self._functions = {row[0].lower() for row in
                           self.fetch("SELECT DISTINCT function_name FROM duckdb_functions()")}
        self._queries: dict[str, Query] = {}
        self._expired: collections.deque[str] = collections.deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._counter = 0
        self._node = secrets.token_hex(3)[:5]
        self._running = 0
        self.peak_running = 0
        # the same, per client source (X-Trino-Source): which component put the load on the engine
        self._running_by_source: collections.Counter[str] = collections.Counter()
        self.peak_running_by_source: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(config.max_running_queries, thread_name_prefix="local-trino-query")
        self._stopping = threading.Event()
        self._housekeeper = threading.Thread(target=self._housekeeping, name="local-trino-housekeeping",
                                             daemon=True)
        self._housekeeper.start()

    def fetch(self, sql: str, parameters: list | None = None) -> list[tuple]:
        """Rows of a metadata query on a short-lived connection of its own."""
        with self._db.cursor() as cursor:
            return cursor.execute(sql, parameters or []).fetchall()

    # --- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self._stopping.set()
        for query in self.queries():
            query.fail(TrinoError("SERVER_SHUTTING_DOWN", "Server is shutting down"))
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._housekeeper.join(timeout=5)
        for query in self.queries():
            with query.page_lock:
                query.release()
        self._db.close()

    # --- submission and lookup ------------------------------------------------------------------
    def submit(self, sql: str, session: Session) -> Query:
        with self._lock:
            self._counter += 1
            query_id = f"{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}_{self._counter:05d}_{self._node}"
            query = Query(query_id, secrets.token_hex(8), sql, session)
            self._queries[query_id] = query
        # decided at submission, so a fault holds from the client's very first poll
        query.fault = self.faults.take(sql)
        if query.fault is not None:
            log.info("fault %s (%s) applies to statement %s", query.fault.id, query.fault.action, query_id)
            query.drop_connections = query.fault.action == "drop"
        return query

    def start(self, query: Query) -> None:
        """Schedule a submitted statement (apart from submit, so its first answer says QUEUED)."""
        self._pool.submit(self._run, query)

    def get(self, query_id: str) -> Query | None:
        with self._lock:
            return self._queries.get(query_id)

    def was_expired(self, query_id: str) -> bool:
        return query_id in self._expired

    def queries(self) -> list[Query]:
        with self._lock:
            return list(self._queries.values())

    def cancel(self, query_id: str) -> bool:
        query = self.get(query_id)
        if query is None:
            return False
        query.fail(TrinoError("USER_CANCELED", "Query was canceled"))
        return True

    def kill(self, query_id: str, message: str | None) -> None:
        query = self.get(query_id)
        if query is None:
            raise TrinoError("NOT_FOUND", f"Target query not found: {query_id}")
        text = "Query killed. Message: " + message if message else "Query killed. No message provided."
        query.fail(TrinoError("ADMINISTRATIVELY_KILLED", text))

    @property
    def running(self) -> int:
        return self._running

    def reset_peak(self) -> None:
        """Start measuring the most statements running at once afresh (from those running now)."""
        with self._lock:
            self.peak_running = self._running
            self.peak_running_by_source = {s: n for s, n in self._running_by_source.items() if n}

    # --- execution ------------------------------------------------------------------------------
    def _run(self, query: Query) -> None:
        with self._lock:
            source = query.session.source or ""
            self._running += 1
            self._running_by_source[source] += 1
            self.peak_running = max(self.peak_running, self._running)
            self.peak_running_by_source[source] = max(self.peak_running_by_source.get(source, 0),
                                                      self._running_by_source[source])
        try:
            query.begin(QueryState.PLANNING)
            self._apply_fault(query)
            self._execute(query, query.sql)
        except _Stopped:
            pass
        except TrinoError as error:
            query.fail(error)
        except duckdb.Error as error:
            query.fail(from_duckdb(error))
        except Exception as error:  # noqa: BLE001 - an engine bug must reach the client, not kill a thread
            log.exception("statement %s failed inside the engine", query.id)
            query.fail(TrinoError("GENERIC_INTERNAL_ERROR", f"{type(error).__name__}: {error}"))
        finally:
            with self._lock:
                self._running -= 1
                self._running_by_source[source] -= 1
            query.stopped.set()

    def _apply_fault(self, query: Query) -> None:
        fault = query.fault
        if fault is None or fault.action == "drop":
            return
        if fault.action == "stall":
            query.begin(QueryState.RUNNING)
            query.pause(fault.seconds)
        else:
            query.begin(QueryState.RUNNING)
            raise TrinoError(fault.error_name, fault.message, error_type=fault.error_type)

    def _execute(self, query: Query, sql: str) -> None:
        command = dialect.session_command(sql)
        if command is not None:
            query.succeed(self._run_command(query, command))
            return
        plan = dialect.plan(sql, _CatalogView(self, query.session))
        self._check_names(plan, query.session)
        query.input_rows, query.input_bytes = self._input_size(plan, query.session)
        duck = self._db.cursor()
        try:
            self._prepare_connection(duck, query.session)
            query.attach(duck)
            query.begin(QueryState.RUNNING)
            duck.execute(plan.duckdb_sql)
            if plan.update_type is not None:
                row = duck.fetchone() if plan.counts_rows else None
                # CREATE TABLE IF NOT EXISTS ... AS on an existing table writes nothing: Trino says 0 rows
                count = (row[0] if row else 0) if plan.counts_rows else None
                query.succeed(_update(plan.update_type, count))
                duck.close()
                return
            types = [trino_type(d[1]) for d in duck.description]
            columns = [column_json(d[0], t) for d, t in zip(duck.description, types)]
            query.succeed(Result(columns, row_encoder(types), cursor=duck))
        except BaseException:
            duck.close()
            if query.state.done:   # cancelled or killed: DuckDB's interrupt error is the echo of it
                raise _Stopped() from None
            raise

    def _prepare_connection(self, duck: duckdb.DuckDBPyConnection, session: Session) -> None:
        catalog = session.catalog or self.catalog
        if catalog != self.catalog:
            raise TrinoError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' not found")
        schema = session.schema or "main"
        duck.execute("SET enable_progress_bar = true")   # makes query_progress() report
        duck.execute("SET enable_progress_bar_print = false")
        # USE takes no parameters; the catalog is validated and the schema is one that exists
        target = f"{_quoted(catalog)}.{_quoted(schema)}" if self._schema_exists(schema) else _quoted(catalog)
        duck.execute(f"USE {target}")
        if session.time_zone:
            if not _TIME_ZONE.fullmatch(session.time_zone):
                raise TrinoError("INVALID_FUNCTION_ARGUMENT", f"Time zone not supported: {session.time_zone}")
            duck.execute(f"SET TimeZone = '{session.time_zone}'")  # SET takes no parameters; validated above

    def _schema_exists(self, schema: str) -> bool:
        rows = self.fetch(
            "SELECT 1 FROM duckdb_schemas() WHERE database_name = ? AND schema_name = ?",
            [self.catalog, schema])
        return bool(rows)

    def _check_names(self, plan: dialect.Plan, session: Session) -> None:
        for catalog, schema, _ in plan.tables:
            if catalog is None and session.catalog is None:
                raise TrinoError("MISSING_CATALOG_NAME", "Catalog must be specified when session catalog is not set")
            if schema is None and session.schema is None:
                raise TrinoError("MISSING_SCHEMA_NAME", "Schema must be specified when session schema is not set")
            if catalog is not None and catalog.lower() not in (self.catalog, "system"):
                raise TrinoError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' not found")

    def _input_size(self, plan: dialect.Plan, session: Session) -> tuple[int, int]:
        rows = size = 0
        for _, schema, table in plan.tables:
            found = self.fetch(
                "SELECT estimated_size, column_count FROM duckdb_tables() "
                "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
                [self.catalog, schema or session.schema or "main", table])
            if found:
                rows += found[0][0]
                size += found[0][0] * found[0][1] * 8
        return rows, size

    # --- statements the coordinator answers itself ----------------------------------------------
    def _run_command(self, query: Query, command: dialect.SessionCommand) -> Result:
        session, args = query.session, command.args
        if command.kind == "execute_immediate":
            bound = dialect.bind_parameters(args["sql"], dialect.parse_parameters(args["using"]))
            self._execute_nested(query, bound)
            return query.result
        if command.kind == "prepare":
            dialect.parse(args["sql"])  # a statement that cannot be parsed cannot be prepared
            query.response_headers.setdefault("X-Trino-Added-Prepare", []).append(
                f"{args['name']}={quote_plus(args['sql'])}")
            return _update("PREPARE", None)
        if command.kind == "execute":
            if args["name"] not in session.prepared:
                raise TrinoError("NOT_FOUND", f"Prepared statement not found: {args['name']}")
            bound = dialect.bind_parameters(session.prepared[args["name"]],
                                            dialect.parse_parameters(args["using"]))
            self._execute_nested(query, bound)
            return query.result
        if command.kind == "deallocate":
            if args["name"] not in session.prepared:
                raise TrinoError("NOT_FOUND", f"Prepared statement not found: {args['name']}")
            query.response_headers.setdefault("X-Trino-Deallocated-Prepare", []).append(args["name"])
            return _update("DEALLOCATE", None)
        if command.kind == "use":
            catalog = args["catalog"] or session.catalog
            if catalog is None:
                raise TrinoError("GENERIC_USER_ERROR", "Catalog must be specified when session catalog is not set")
            if catalog != self.catalog:
                raise TrinoError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' not found")
            if not self._schema_exists(args["schema"]):
                raise TrinoError("SCHEMA_NOT_FOUND", f"Schema does not exist: {catalog}.{args['schema']}")
            query.response_headers["X-Trino-Set-Catalog"] = [catalog]
            query.response_headers["X-Trino-Set-Schema"] = [args["schema"]]
            return _update("USE", None)
        if command.kind == "set_session":
            name, value = args["name"].lower(), dialect.literal_value(args["value"])
            _validate_session_property(name, value)
            query.response_headers.setdefault("X-Trino-Set-Session", []).append(f"{name}={quote_plus(value)}")
            return _update("SET SESSION", None)
        if command.kind == "reset_session":
            query.response_headers.setdefault("X-Trino-Clear-Session", []).append(args["name"].lower())
            return _update("RESET SESSION", None)
        if command.kind == "call":
            return self._call(args["procedure"], args["args"])
        if command.kind == "show_catalogs":
            return _rows_result([("Catalog", "varchar")], [["system"], [self.catalog]])
        if command.kind == "show_schemas":
            return _rows_result([("Schema", "varchar")], [[s] for s in self.schemas()])
        if command.kind == "show_tables":
            schema = args["schema"] or session.schema
            if schema is None:
                raise TrinoError("MISSING_SCHEMA_NAME", "Schema must be specified when session schema is not set")
            return _rows_result([("Table", "varchar")], [[t] for t, _ in self.tables(schema)])
        raise TrinoError("NOT_SUPPORTED", f"Statement {command.kind} is not supported by the local engine")

    def _execute_nested(self, query: Query, sql: str) -> None:
        if dialect.session_command(sql) is not None and dialect.session_command(sql).kind in (
                "execute_immediate", "execute", "prepare"):
            raise TrinoError("NOT_SUPPORTED", "Nested prepared statements are not supported")
        self._execute(query, sql)

    def _call(self, procedure: str, arguments: str) -> Result:
        name = procedure.replace('"', "").lower()
        if name not in ("system.runtime.kill_query", "runtime.kill_query"):
            raise TrinoError("PROCEDURE_NOT_FOUND", f"Procedure not registered: {name}")
        values = dialect.procedure_arguments(arguments, ["query_id", "message"])
        if "query_id" not in values:
            raise TrinoError("INVALID_PROCEDURE_ARGUMENT", "Required procedure argument 'query_id' is missing")
        self.kill(values["query_id"], values.get("message"))
        return _update("CALL", None)

    # --- catalog metadata -----------------------------------------------------------------------
    def schemas(self) -> list[str]:
        rows = self.fetch(
            "SELECT schema_name FROM duckdb_schemas() WHERE database_name = ? ORDER BY 1",
            [self.catalog])
        return [r[0] for r in rows if r[0] != "pg_catalog"] + ["information_schema"]

    def tables(self, schema: str | None = None) -> list[tuple]:
        """(schema, table, type, comment) of every table and view; (table, type) of one schema's."""
        rows = self.fetch(
            "SELECT schema_name, table_name, 'BASE TABLE', comment FROM duckdb_tables() WHERE database_name = ? "
            "UNION ALL SELECT schema_name, view_name, 'VIEW', comment FROM duckdb_views() "
            "WHERE database_name = ? AND NOT internal ORDER BY 1, 2", [self.catalog, self.catalog])
        if schema is not None:
            return [(r[1], r[2]) for r in rows if r[0] == schema]
        return rows

    def has_function(self, name: str) -> bool:
        return name in self._functions

    def system_table(self, session: Session, catalog: str | None, schema: str, table: str) -> exp.Expression | None:
        catalog = (catalog or session.catalog or "").lower()
        schema = (schema or session.schema or "").lower()
        table = table.lower()
        if catalog == "system":
            build = _SYSTEM_TABLES.get((schema, table))
        elif schema == "information_schema":
            build = _INFORMATION_SCHEMA.get(table)
            if build is not None and catalog != self.catalog:
                raise TrinoError("CATALOG_NOT_FOUND", f"Catalog '{catalog}' not found")
        else:
            return None
        if build is None:
            raise TrinoError("TABLE_NOT_FOUND", f"Table '{catalog}.{schema}.{table}' does not exist")
        columns, rows = build(self)
        return values_table(columns, rows)

    # --- housekeeping ---------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        while not self._stopping.wait(0.25):
            now = time.time()
            for query in self.queries():
                if not query.state.done:
                    self._enforce_limits(query, now)
                elif query.ended and now - query.ended > self.config.expire_after_seconds:
                    with self._lock:
                        self._queries.pop(query.id, None)
                    self._expired.append(query.id)
                    with query.page_lock:
                        query.release()

    def _enforce_limits(self, query: Query, now: float) -> None:
        properties = query.session.properties
        for name in ("query_max_run_time", "query_max_execution_time"):
            if name in properties:
                try:
                    limit = parse_duration(properties[name])
                except TrinoError:
                    continue
                since = query.created if name == "query_max_run_time" else (query.started or now)
                if now - since > limit:
                    query.fail(TrinoError("EXCEEDED_TIME_LIMIT", f"Query exceeded maximum time limit of {limit:.2f}s"))
                    return
        if now - query.last_heartbeat > self.config.client_timeout_seconds:
            query.fail(TrinoError(
                "ABANDONED_QUERY",
                f"Query {query.id} was abandoned by the client, as it may have exited or stopped checking "
                f"for query results. Query results have not been accessed since "
                f"{dt.datetime.fromtimestamp(query.last_heartbeat, dt.timezone.utc).isoformat()}"))


class _CatalogView:
    """The engine's catalog as one session sees it: what `dialect.plan` asks about."""

    def __init__(self, engine: Engine, session: Session):
        self._engine, self._session = engine, session

    def system_table(self, catalog: str | None, schema: str, table: str) -> exp.Expression | None:
        return self._engine.system_table(self._session, catalog, schema, table)

    def has_function(self, name: str) -> bool:
        return self._engine.has_function(name)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _validate_session_property(name: str, value: str) -> None:
    if "." not in name and name not in SESSION_PROPERTIES:
        raise TrinoError("INVALID_SESSION_PROPERTY", f"Session property '{name}' does not exist")
    if name in ("query_max_run_time", "query_max_execution_time"):
        parse_duration(value)


_BIGINT = trino_type(duckdb.sqltype("BIGINT"))
_BOOLEAN = trino_type(duckdb.sqltype("BOOLEAN"))
_VARCHAR = trino_type(duckdb.sqltype("VARCHAR"))


def _update(update_type: str, count: int | None) -> Result:
    """Trino answers DML with one `rows bigint` row, and other updates with one `result boolean` row."""
    if count is not None:
        return Result([column_json("rows", _BIGINT)], list, rows=[[count]],
                      update_type=update_type, update_count=count)
    return Result([column_json("result", _BOOLEAN)], list, rows=[[True]], update_type=update_type)


def _rows_result(columns: list[tuple[str, str]], rows: list[list]) -> Result:
    return Result([column_json(name, _VARCHAR) for name, _ in columns], list, rows=rows)


# --- system tables and information_schema, as snapshots --------------------------------------------

def values_table(columns: list[tuple[str, str]], rows: list[tuple]) -> exp.Select:
    """A SELECT over literal rows with typed columns; an empty one when there are no rows."""
    aliases = [exp.to_identifier(f"c{i}") for i in range(len(columns))]
    data = rows or [tuple(None for _ in columns)]
    values = exp.Values(
        expressions=[exp.Tuple(expressions=[exp.convert(v) for v in row]) for row in data],
        alias=exp.TableAlias(this=exp.to_identifier("v"), columns=aliases))
    select = exp.select(*[exp.cast(exp.column(alias), exp.DataType.build(type_, dialect="duckdb"))
                          .as_(name, quoted=True) for alias, (name, type_) in zip(aliases, columns)])
    select = select.from_(values)
    return select if rows else select.where(exp.false())


def _trino_type_name(duck_type: str) -> str:
    try:
        return trino_type(duckdb.sqltype(duck_type)).name
    except (TrinoError, duckdb.Error):
        return duck_type.lower()


def _schemata(engine: Engine) -> tuple[list, list]:
    return ([("catalog_name", "VARCHAR"), ("schema_name", "VARCHAR")],
            [(engine.catalog, s) for s in engine.schemas()])


def _tables(engine: Engine) -> tuple[list, list]:
    return ([("table_catalog", "VARCHAR"), ("table_schema", "VARCHAR"), ("table_name", "VARCHAR"),
             ("table_type", "VARCHAR")],
            [(engine.catalog, s, t, k) for s, t, k, _ in engine.tables()])


def _columns(engine: Engine) -> tuple[list, list]:
    rows = engine.fetch(
        "SELECT schema_name, table_name, column_name, column_index, column_default, is_nullable, data_type, comment "
        "FROM duckdb_columns() WHERE database_name = ? ORDER BY 1, 2, 4", [engine.catalog])
    return ([("table_catalog", "VARCHAR"), ("table_schema", "VARCHAR"), ("table_name", "VARCHAR"),
             ("column_name", "VARCHAR"), ("ordinal_position", "BIGINT"), ("column_default", "VARCHAR"),
             ("is_nullable", "VARCHAR"), ("data_type", "VARCHAR"), ("comment", "VARCHAR")],
            [(engine.catalog, s, t, c, i, d, "YES" if n else "NO", _trino_type_name(ty), comment)
             for s, t, c, i, d, n, ty, comment in rows])


def _views(engine: Engine) -> tuple[list, list]:
    rows = engine.fetch(
        "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal",
        [engine.catalog])
    return ([("table_catalog", "VARCHAR"), ("table_schema", "VARCHAR"), ("table_name", "VARCHAR"),
             ("view_definition", "VARCHAR")], [(engine.catalog, *r) for r in rows])


def _jdbc_catalogs(engine: Engine) -> tuple[list, list]:
    return [("table_cat", "VARCHAR")], [("system",), (engine.catalog,)]


def _metadata_catalogs(engine: Engine) -> tuple[list, list]:
    return ([("catalog_name", "VARCHAR"), ("connector_id", "VARCHAR"), ("connector_name", "VARCHAR")],
            [("system", "system", "system"), (engine.catalog, engine.catalog, "duckdb")])


def _table_comments(engine: Engine) -> tuple[list, list]:
    return ([("catalog_name", "VARCHAR"), ("schema_name", "VARCHAR"), ("table_name", "VARCHAR"),
             ("comment", "VARCHAR")], [(engine.catalog, s, t, c) for s, t, _, c in engine.tables()])


def _timestamp_text(value: float | None) -> str | None:
    if value is None:
        return None
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).isoformat()


def _runtime_queries(engine: Engine) -> tuple[list, list]:
    rows = []
    for q in engine.queries():
        started = q.started
        rows.append((q.id, q.state.value, q.session.user, q.session.source, q.sql, None,
                     int(((started or q.ended or time.time()) - q.created) * 1000), 0, 0,
                     _timestamp_text(q.created), _timestamp_text(started), _timestamp_text(q.last_heartbeat),
                     _timestamp_text(q.ended),
                     q.error.error.type.value if q.error else None, q.error.name if q.error else None))
    return ([("query_id", "VARCHAR"), ("state", "VARCHAR"), ("user", "VARCHAR"), ("source", "VARCHAR"),
             ("query", "VARCHAR"), ("resource_group_id", "VARCHAR[]"), ("queued_time_ms", "BIGINT"),
             ("analysis_time_ms", "BIGINT"), ("planning_time_ms", "BIGINT"),
             ("created", "TIMESTAMPTZ"), ("started", "TIMESTAMPTZ"), ("last_heartbeat", "TIMESTAMPTZ"),
             ("end", "TIMESTAMPTZ"), ("error_type", "VARCHAR"), ("error_code", "VARCHAR")], rows)


_INFORMATION_SCHEMA = {"schemata": _schemata, "tables": _tables, "columns": _columns, "views": _views}
_SYSTEM_TABLES = {
    ("runtime", "queries"): _runtime_queries,
    ("jdbc", "catalogs"): _jdbc_catalogs,
    ("metadata", "catalogs"): _metadata_catalogs,
    ("metadata", "table_comments"): _table_comments,
}


def open_database(path: str | None, catalog: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the catalog attached (from a file, or in memory)."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", catalog):
        raise ValueError(f"invalid catalog name {catalog!r}: use lower-case letters, digits and _")
    if catalog in ("system", "temp", "memory", "main", "information_schema"):
        raise ValueError(f"catalog name {catalog!r} is reserved")
    connection = duckdb.connect(":memory:")
    target = path if path else ":memory:"
    connection.execute(f"ATTACH '{target.replace(chr(39), chr(39) * 2)}' AS \"{catalog}\"")
    connection.execute(f'USE "{catalog}"')
    return connection


