"""The engine behind the HTTP protocol: DuckDB databases presented as Trino catalogs.

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
from pathlib import Path
from urllib.parse import quote_plus

import duckdb
from sqlglot import exp

from report_pipeline.local_trino import dialect, semantics, system_tables
from report_pipeline.local_trino.catalogs import INFORMATION_SCHEMA, Catalogs, CatalogSpec
from report_pipeline.local_trino.errors import TrinoError, from_duckdb
from report_pipeline.local_trino.faults import FaultInjector
from report_pipeline.local_trino.query import Query, QueryState, Result, Session, _Stopped
from report_pipeline.local_trino.transactions import Transaction, Transactions
from report_pipeline.local_trino.types import (
    bounded_varchar,
    column_json,
    output_type,
    row_encoder,
    trino_type,
)

log = logging.getLogger(__name__)

# Trino 476's system session properties (SHOW SESSION of a real server) are accepted; the engine
# acts on query_max_run_time and query_max_execution_time. Catalog properties (`catalog.name`) are
# checked per connector.
SESSION_PROPERTIES = frozenset(
    line.strip()
    for line in (Path(__file__).with_name("trino_session_properties.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
_TIME_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+\-/]*|[+-]\d{2}:\d{2}")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class EngineConfig:
    catalogs: tuple[CatalogSpec, ...] = (CatalogSpec("lake"),)  # the first holds the sample data
    max_running_queries: int = 32
    client_timeout_seconds: float = 300.0  # Trino's query.client.timeout
    expire_after_seconds: float = 900.0  # Trino's query.min-expire-age
    page_rows: int = 20_000
    fault_injection: bool = False  # the /v1/local/faults API: tests and demos only


def parse_duration(text: str) -> float:
    """Trino's duration syntax (`30s`, `1.5m`, `2h`) in seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*", text)
    if not match or match.group(2) not in _DURATION_UNITS:
        raise TrinoError(
            "INVALID_SESSION_PROPERTY", f"Invalid duration: {text!r} (use e.g. 30s, 5m, 1h)"
        )
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Engine:
    def __init__(self, database: duckdb.DuckDBPyConnection, config: EngineConfig = EngineConfig()):
        self.config = config
        self.catalogs = Catalogs(database, list(config.catalogs))
        self.catalog = self.catalogs.default
        self.faults = FaultInjector()
        self.transactions = Transactions()
        self.version = dialect.ENGINE_VERSION
        self.http_uri = ""  # set by the server that serves the engine
        self._db = database
        self._functions = {
            row[0].lower()
            for row in self.fetch("SELECT DISTINCT function_name FROM duckdb_functions()")
        }
        self._queries: dict[str, Query] = {}
        self._expired: collections.deque[str] = collections.deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._counter = 0
        self._node = secrets.token_hex(3)[:5]
        self.node_id = f"local-trino-{self._node}"
        self._running = 0
        self.peak_running = 0
        # the same, per client source (X-Trino-Source): which component put the load on the engine
        self._running_by_source: collections.Counter[str] = collections.Counter()
        self.peak_running_by_source: dict[str, int] = {}
        self._pool = ThreadPoolExecutor(
            config.max_running_queries, thread_name_prefix="local-trino-query"
        )
        self._stopping = threading.Event()
        self._housekeeper = threading.Thread(
            target=self._housekeeping, name="local-trino-housekeeping", daemon=True
        )
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
            query_id = (
                f"{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}_{self._counter:05d}_{self._node}"
            )
            query = Query(query_id, secrets.token_hex(8), sql, session)
            self._queries[query_id] = query
        # decided at submission, so a fault holds from the client's very first poll
        query.fault = self.faults.take(sql) if self.config.fault_injection else None
        if query.fault is not None:
            log.info(
                "fault %s (%s) applies to statement %s",
                query.fault.id,
                query.fault.action,
                query_id,
            )
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
        text = (
            "Query killed. Message: " + message if message else "Query killed. No message provided."
        )
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
            self.peak_running_by_source[source] = max(
                self.peak_running_by_source.get(source, 0), self._running_by_source[source]
            )
        try:
            query.begin(QueryState.PLANNING)
            self._apply_fault(query)
            for (
                name,
                value,
            ) in query.session.properties.items():  # X-Trino-Session, as Trino checks it
                _validate_session_property(name.lower(), value, self.catalogs)
            self._execute(query, query.sql)
        except _Stopped:
            pass
        except TrinoError as error:
            query.fail(error)
        except duckdb.Error as error:
            query.fail(from_duckdb(error))
        except Exception as error:
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
            query.pause(fault.seconds, fault.released)
        else:
            query.begin(QueryState.RUNNING)
            raise TrinoError(fault.error_name, fault.message, error_type=fault.error_type)

    def _execute(self, query: Query, sql: str) -> None:
        """Run one statement; inside an explicit transaction, any failure aborts the transaction."""
        session = query.session
        open_id = session.open_transaction_id
        transaction = self.transactions.get(open_id) if open_id is not None else None
        try:
            command = dialect.session_command(sql)
            if command is not None:
                if transaction is not None and transaction.aborted:
                    raise _aborted()
                result = self._run_command(query, command)
                if result is not None:
                    query.succeed(result)
                return
            tree = dialect.parse(sql)
            if isinstance(tree, (exp.Transaction, exp.Commit, exp.Rollback)):
                query.succeed(self._transaction_statement(query, tree, transaction))
                return
            if transaction is not None and transaction.aborted:
                raise _aborted()
            self._run_plan(query, tree, transaction)
        except BaseException:
            if transaction is not None:
                transaction.aborted = True
            raise

    def _run_plan(self, query: Query, tree: exp.Expr, transaction: Transaction | None) -> None:
        session = query.session
        # RUNNING from here: a statement reading system.runtime.queries sees itself running, as in
        # Trino
        query.begin(QueryState.RUNNING)
        plan = dialect.plan(tree, _CatalogView(self, session))
        self._check_names(plan)
        if plan.update_type is not None and transaction is not None:
            if transaction.read_only:
                raise TrinoError(
                    "READ_ONLY_VIOLATION", "Cannot execute write in a read-only transaction"
                )
            catalog = plan.target[0] if plan.target else ""
            raise TrinoError(
                "AUTOCOMMIT_WRITE_CONFLICT",
                f"Catalog only supports writes using autocommit: {catalog}",
            )
        query.input_rows, query.input_bytes = self._input_size(plan)
        duck = self._db.cursor()
        try:
            self._prepare_connection(duck, session)
            query.attach(duck)
            # CREATE TABLE IF NOT EXISTS of a table that exists changes nothing, its declared types
            # included
            creates = plan.update_type == "CREATE TABLE" and not (
                tree.args.get("exists") and plan.target and self.catalogs.table_exists(*plan.target)
            )
            duck.execute(plan.duckdb_sql)
            if plan.update_type is not None:
                row = duck.fetchone() if plan.counts_rows else None
                # CREATE TABLE IF NOT EXISTS ... AS on an existing table writes nothing: Trino says
                # 0 rows
                count = (row[0] if row else 0) if plan.counts_rows else None
                if plan.update_type != "CREATE TABLE" or creates:
                    self._track_declared_types(plan, tree)
                query.succeed(_update(plan.update_type, count))
                duck.close()
                return
            types = [
                output_type(plan.output_types[i]) if i in plan.output_types else trino_type(d[1])
                for i, d in enumerate(duck.description)
            ]
            self._apply_declared_types(plan, tree, session, [d[0] for d in duck.description], types)
            columns = [column_json(d[0], t) for d, t in zip(duck.description, types, strict=True)]
            query.succeed(Result(columns, row_encoder(types), cursor=duck))
        except BaseException:
            duck.close()
            if query.state.done:  # cancelled or killed: DuckDB's interrupt error is the echo of it
                raise _Stopped() from None
            raise

    def _apply_declared_types(
        self,
        plan: dialect.Plan,
        tree: exp.Expr,
        session: Session,
        names: list[str],
        types: list,
    ) -> None:
        """An output column that is a table's varchar(n) column has that type (DuckDB reports
        varchar)."""
        declared = {
            (catalog, *key): value
            for catalog in {t[0] for t in plan.tables}
            for key, value in self.catalogs.declared_types(catalog).items()
        }
        if not declared:
            return
        for index, origin in enumerate(
            dialect.output_origins(tree, names, _CatalogView(self, session))
        ):
            if index not in plan.output_types and origin.table and origin.column:
                trino_type_name = declared.get((*origin.table, origin.column))
                if trino_type_name is not None:
                    types[index] = output_type(trino_type_name)

    def _track_declared_types(self, plan: dialect.Plan, tree: exp.Expr) -> None:
        """Keep the record of varchar(n) columns in step with a DDL statement that just
        succeeded."""
        if plan.schema_target is not None:
            if plan.update_type == "DROP SCHEMA" and plan.schema_target[0] in self.catalogs.specs:
                self.catalogs.forget(*plan.schema_target)
            return
        if plan.target is None:
            return
        catalog, schema, table = plan.target
        if plan.update_type == "CREATE TABLE" and plan.declared_types:
            self.catalogs.declare(catalog, schema, table, plan.declared_types, replace=True)
        elif plan.update_type == "DROP TABLE":
            self.catalogs.forget(catalog, schema, table)
        elif isinstance(tree, exp.Alter):
            for action in tree.args.get("actions") or []:
                if isinstance(action, exp.AlterRename):
                    self.catalogs.rename(
                        catalog,
                        schema,
                        table,
                        new_schema=(action.this.db or schema).lower(),
                        new_table=action.this.name.lower(),
                    )
                elif isinstance(action, exp.RenameColumn):
                    self.catalogs.rename(
                        catalog,
                        schema,
                        table,
                        column=action.this.name.lower(),
                        new_column=action.args["to"].name.lower(),
                    )
                elif isinstance(action, exp.Drop):
                    for column in action.args.get("tables") or []:
                        self.catalogs.forget(catalog, schema, table, column.name.lower())
                elif isinstance(action, (exp.AlterColumn, exp.ColumnDef)):
                    name = action.name.lower()
                    bound = semantics.bounded_varchar(
                        action.args.get("dtype") or action.args.get("kind")
                    )
                    self.catalogs.forget(catalog, schema, table, name)
                    if bound is not None:
                        self.catalogs.declare(catalog, schema, table, {name: bound}, replace=False)

    def _prepare_connection(self, duck: duckdb.DuckDBPyConnection, session: Session) -> None:
        duck.execute("SET enable_progress_bar = true")  # makes query_progress() report
        duck.execute("SET enable_progress_bar_print = false")
        # USE takes no parameters; the name is a known catalog. Every table name in the statement is
        # fully qualified, so this only decides where unqualified functions live.
        duck.execute(f"USE {_quoted(self.catalog)}")
        if session.time_zone:
            # SET takes no parameters; the zone is validated
            duck.execute(f"SET TimeZone = '{duckdb_time_zone(session.time_zone)}'")

    def _check_names(self, plan: dialect.Plan) -> None:
        """Fail as Trino does for a catalog, schema or table that does not exist, and for what the
        target's connector cannot do."""
        for catalog, schema, table in plan.tables:
            self.catalogs.spec(catalog)  # CATALOG_NOT_FOUND for a catalog that does not exist
            if self.catalogs.schema_exists(catalog, schema):
                continue
            target = (catalog, schema, table) == plan.target
            if target and plan.update_type == "CREATE TABLE":
                raise TrinoError("NOT_FOUND", f"Schema {schema} not found")
            if target and plan.if_exists:
                continue
            if target and plan.update_type is not None:
                raise TrinoError(
                    "TABLE_NOT_FOUND", f"Table '{catalog}.{schema}.{table}' does not exist"
                )
            raise TrinoError("SCHEMA_NOT_FOUND", f"Schema '{schema}' does not exist")
        if plan.schema_target is not None:
            catalog, schema = plan.schema_target
            self.catalogs.spec(catalog)
            if schema in self.catalogs.hidden_schemas:
                raise TrinoError(
                    "NOT_SUPPORTED", f"Schema name {schema} is reserved by the local engine"
                )
        if plan.target is not None and not self.catalogs.spec(plan.target[0]).modifies_rows:
            if plan.update_type in ("DELETE", "UPDATE", "MERGE"):
                raise TrinoError(
                    "NOT_SUPPORTED", "This connector does not support modifying table rows"
                )
            if plan.update_type in ("DROP COLUMN", "SET COLUMN TYPE"):
                raise TrinoError(
                    "NOT_SUPPORTED", f"This connector does not support {plan.update_type.lower()}"
                )

    def _input_size(self, plan: dialect.Plan) -> tuple[int, int]:
        rows = size = 0
        for catalog, schema, table in plan.tables:
            table_rows, columns = self.catalogs.table_size(catalog, schema, table)
            rows += table_rows
            size += table_rows * columns * 8
        return rows, size

    # --- transactions ---------------------------------------------------------------------------
    def _transaction_statement(
        self, query: Query, tree: exp.Expr, transaction: Transaction | None
    ) -> Result:
        session = query.session
        if isinstance(tree, exp.Transaction):
            if session.transaction_id is None:
                raise TrinoError("INCOMPATIBLE_CLIENT", "Client does not support transactions")
            if transaction is not None:
                raise TrinoError("NOT_SUPPORTED", "Nested transactions not supported")
            modes = [str(m).upper() for m in tree.args.get("modes") or []]
            isolation = next(
                (
                    m.removeprefix("ISOLATION LEVEL ").strip()
                    for m in modes
                    if m.startswith("ISOLATION LEVEL")
                ),
                "READ UNCOMMITTED",
            )
            started = self.transactions.begin(
                read_only="READ ONLY" in modes, isolation_level=isolation
            )
            query.response_headers["X-Trino-Started-Transaction-Id"] = [started.id]
            return _update("START TRANSACTION", None)
        if transaction is None:
            raise TrinoError("NOT_IN_TRANSACTION", "No transaction in progress")
        self.transactions.end(transaction.id)
        if isinstance(tree, exp.Commit) and transaction.aborted:
            raise TrinoError(
                "TRANSACTION_ALREADY_ABORTED", "Current transaction has already been aborted"
            )
        query.response_headers["X-Trino-Clear-Transaction-Id"] = ["true"]
        return _update("COMMIT" if isinstance(tree, exp.Commit) else "ROLLBACK", None)

    # --- statements the coordinator answers itself ----------------------------------------------
    def _run_command(self, query: Query, command: dialect.SessionCommand) -> Result | None:
        """The statement's result; None when a nested statement (EXECUTE) has already ended the
        query."""
        session, args = query.session, command.args
        if command.kind in ("execute_immediate", "execute"):
            text = (
                args["sql"]
                if command.kind == "execute_immediate"
                else self._prepared(session, args["name"])
            )
            inner = dialect.session_command(text)
            # Trino binds no parameters into an EXPLAIN
            if inner is not None and inner.kind == "explain":
                return self._explain(session, inner.args["options"], inner.args["body"])
        if command.kind == "execute_immediate":
            bound = dialect.bind_parameters(args["sql"], dialect.parse_parameters(args["using"]))
            self._execute_nested(query, bound)
            return query.result
        if command.kind == "prepare":
            dialect.parse(args["sql"])  # a statement that cannot be parsed cannot be prepared
            query.response_headers.setdefault("X-Trino-Added-Prepare", []).append(
                f"{args['name']}={quote_plus(args['sql'])}"
            )
            return _update("PREPARE", None)
        if command.kind == "execute":
            bound = dialect.bind_parameters(
                self._prepared(session, args["name"]), dialect.parse_parameters(args["using"])
            )
            self._execute_nested(query, bound)
            return query.result
        if command.kind == "deallocate":
            self._prepared(session, args["name"])
            query.response_headers.setdefault("X-Trino-Deallocated-Prepare", []).append(
                args["name"]
            )
            return _update("DEALLOCATE", None)
        if command.kind == "describe_output":
            return self._describe_output(session, self._prepared(session, args["name"]))
        if command.kind == "use":
            catalog = args["catalog"] or session.catalog
            if catalog is None:
                raise TrinoError(
                    "MISSING_CATALOG_NAME",
                    "Catalog must be specified when session catalog is not set",
                )
            self.catalogs.spec(catalog)
            if not self.catalogs.schema_exists(catalog, args["schema"]):
                raise TrinoError("NOT_FOUND", f"Schema does not exist: {catalog}.{args['schema']}")
            query.response_headers["X-Trino-Set-Catalog"] = [catalog]
            query.response_headers["X-Trino-Set-Schema"] = [args["schema"]]
            return _update("USE", None)
        if command.kind == "set_session":
            name, value = args["name"].lower(), dialect.literal_value(args["value"])
            _validate_session_property(name, value, self.catalogs)
            query.response_headers.setdefault("X-Trino-Set-Session", []).append(
                f"{name}={quote_plus(value)}"
            )
            return _update("SET SESSION", None)
        if command.kind == "explain":
            return self._explain(session, args["options"], args["body"])
        if command.kind == "set_time_zone":
            # Trino keeps the zone in the hidden session property time_zone_id
            if args["zone"] is None:
                query.response_headers.setdefault("X-Trino-Clear-Session", []).append(
                    "time_zone_id"
                )
            else:
                duckdb_time_zone(args["zone"])
                query.response_headers.setdefault("X-Trino-Set-Session", []).append(
                    f"time_zone_id={quote_plus(args['zone'])}"
                )
            return _update("SET TIME ZONE", None)
        if command.kind == "reset_session":
            _validate_session_property(args["name"].lower(), None, self.catalogs)
            query.response_headers.setdefault("X-Trino-Clear-Session", []).append(
                args["name"].lower()
            )
            return _update("RESET SESSION", None)
        if command.kind == "call":
            return self._call(args["procedure"], args["args"])
        if command.kind == "show_catalogs":
            return _bounded_rows_result(
                ["Catalog"], [[c] for c in sorted(["system", *self.catalogs.names])]
            )
        if command.kind == "show_schemas":
            catalog = args["catalog"] or session.catalog
            if catalog is None:
                raise TrinoError(
                    "MISSING_CATALOG_NAME",
                    "Catalog must be specified when session catalog is not set",
                )
            schemas = (
                system_tables.SYSTEM_SCHEMAS
                if catalog == "system"
                else self.catalogs.schemas(self.catalogs.spec(catalog).name)
            )
            return _rows_result(["Schema"], [[s] for s in schemas])
        if command.kind == "show_tables":
            catalog, schema = self._schema_of(session, args["catalog"], args["schema"])
            if catalog == "system" or schema == INFORMATION_SCHEMA:
                tables = system_tables.system_tables_of(schema)
            else:
                tables = [t for s, t, _, _ in self.catalogs.tables(catalog) if s == schema]
            return _rows_result(["Table"], [[t] for t in tables])
        if command.kind == "show_columns":
            return self._show_columns(session, args["table"])
        raise TrinoError(
            "NOT_SUPPORTED", f"Statement {command.kind} is not supported by the local engine"
        )

    def _schema_of(
        self, session: Session, catalog: str | None, schema: str | None
    ) -> tuple[str, str]:
        catalog = catalog or session.catalog
        schema = schema or session.schema
        if catalog is None:
            raise TrinoError(
                "MISSING_CATALOG_NAME", "Catalog must be specified when session catalog is not set"
            )
        if schema is None:
            raise TrinoError(
                "MISSING_SCHEMA_NAME", "Schema must be specified when session schema is not set"
            )
        if catalog == "system":
            if schema not in system_tables.SYSTEM_SCHEMAS:
                raise TrinoError("SCHEMA_NOT_FOUND", f"Schema '{schema}' does not exist")
        elif not self.catalogs.schema_exists(self.catalogs.spec(catalog).name, schema):
            raise TrinoError("SCHEMA_NOT_FOUND", f"Schema '{schema}' does not exist")
        return catalog, schema

    def _prepared(self, session: Session, name: str) -> str:
        if name not in session.prepared:
            raise TrinoError("NOT_FOUND", f"Prepared statement not found: {name}")
        return session.prepared[name]

    def _show_columns(self, session: Session, name: tuple[str | None, str | None, str]) -> Result:
        """DESCRIBE t and SHOW COLUMNS FROM t: the columns of one table as Trino lists them."""
        catalog, schema = self._schema_of(session, name[0], name[1])
        table = name[2]
        snapshot = system_tables.snapshot(self, catalog, schema, table)
        if snapshot is not None:
            # Trino's system tables keep milliseconds in their zoned timestamps
            columns = [
                (
                    c,
                    "timestamp(3) with time zone"
                    if ty == "TIMESTAMPTZ"
                    else system_tables.trino_type_name(ty),
                    None,
                )
                for c, ty in snapshot[0]
            ]
        else:
            declared = self.catalogs.declared_types(catalog)
            columns = [
                (c, declared.get((s, t, c)) or system_tables.trino_type_name(ty), comment)
                for s, t, c, _, _, _, ty, comment in self.catalogs.columns(catalog)
                if s == schema and t == table
            ]
        if not columns:
            raise TrinoError(
                "TABLE_NOT_FOUND", f"Table '{catalog}.{schema}.{table}' does not exist"
            )
        return _rows_result(
            ["Column", "Type", "Extra", "Comment"],
            [[c, ty, "", comment or ""] for c, ty, comment in columns],
        )

    def _describe_output(self, session: Session, sql: str) -> Result:
        """DESCRIBE OUTPUT: the columns a prepared statement would return, without running it."""
        tree = dialect.parse(sql)
        # DuckDB cannot describe an unbound `?`: NULL stands in where the value cannot change an
        # output type; one an output column is built from would be typed unknown by Trino
        if isinstance(tree, exp.Query) and any(
            p.find_ancestor(exp.Select) is tree
            and p.find_ancestor(exp.Where, exp.Having, exp.Join, exp.Subquery) is None
            for p in tree.find_all(exp.Placeholder)
        ):
            raise TrinoError(
                "NOT_SUPPORTED",
                "DESCRIBE OUTPUT of a parameter in the select list is not supported "
                "by the local engine",
            )
        tree = tree.transform(
            lambda node: exp.null() if isinstance(node, exp.Placeholder) else node
        )
        plan = dialect.plan(tree, _CatalogView(self, session))
        self._check_names(plan)
        if plan.update_type is not None:
            described = [("rows", "", "", "", "bigint", 8, False)] if plan.counts_rows else []
        else:
            with self._db.cursor() as duck:
                duck.execute(f"USE {_quoted(self.catalog)}")
                rows = duck.execute("DESCRIBE " + plan.duckdb_sql).fetchall()
            origins = dialect.output_origins(
                tree, [r[0] for r in rows], _CatalogView(self, session)
            )
            described = []
            for (name, duck_type, *_), origin in zip(rows, origins, strict=True):
                type_ = trino_type(duckdb.sqltype(duck_type))
                table = origin.table or ("", "", "")
                described.append((name, *table, type_.name, type_.fixed_size, origin.aliased))
        names = ["Column Name", "Catalog", "Schema", "Table", "Type", "Type Size", "Aliased"]
        columns = [
            column_json(n, bounded_varchar([r[i] for r in described]))
            for i, n in enumerate(names[:5])
        ]
        columns += [column_json("Type Size", _INTEGER), column_json("Aliased", _BOOLEAN)]
        return Result(columns, list, rows=[list(r) for r in described])

    def _explain(self, session: Session, options: set[str], body: str) -> Result:
        """EXPLAIN checks the statement as planning it would (its errors are Trino's); only
        `TYPE VALIDATE` has an answer to give: the plan itself would be DuckDB's."""
        if body.lstrip().upper().startswith("ANALYZE"):
            raise TrinoError(
                "NOT_SUPPORTED", "EXPLAIN ANALYZE is not supported by the local engine"
            )
        tree = dialect.parse(body)
        markers = len(list(tree.find_all(exp.Placeholder)))
        if markers:  # nothing binds an EXPLAIN's parameters
            raise TrinoError(
                "INVALID_PARAMETER_USAGE",
                f"Incorrect number of parameters: expected {markers} but found 0",
            )
        plan = dialect.plan(tree, _CatalogView(self, session))
        self._check_names(plan)
        with self._db.cursor() as duck:
            self._prepare_connection(duck, session)
            duck.execute("EXPLAIN " + plan.duckdb_sql)  # binds every name and type, runs nothing
        if options == {"TYPE VALIDATE"}:
            return Result([column_json("Valid", _BOOLEAN)], list, rows=[[True]])
        raise TrinoError(
            "NOT_SUPPORTED",
            "EXPLAIN output (the plan would be DuckDB's) is not supported by the local "
            "engine; EXPLAIN (TYPE VALIDATE) is",
        )

    def _execute_nested(self, query: Query, sql: str) -> None:
        command = dialect.session_command(sql)
        if command is not None and command.kind in ("execute_immediate", "execute", "prepare"):
            raise TrinoError("NOT_SUPPORTED", "Nested prepared statements are not supported")
        self._execute(query, sql)

    def _call(self, procedure: str, arguments: str) -> Result:
        name = procedure.replace('"', "").lower()
        if name not in ("system.runtime.kill_query", "runtime.kill_query"):
            raise TrinoError("PROCEDURE_NOT_FOUND", f"Procedure not registered: {name}")
        values = dialect.procedure_arguments(arguments, ["query_id", "message"])
        if "query_id" not in values:
            raise TrinoError(
                "INVALID_PROCEDURE_ARGUMENT", "Required procedure argument 'query_id' is missing"
            )
        self.kill(values["query_id"], values.get("message"))
        return _update("CALL", None)

    # --- catalog metadata -----------------------------------------------------------------------
    def has_function(self, name: str) -> bool:
        return name in self._functions

    def system_table(
        self, catalog: str, schema: str, table: str, hidden: bool = False
    ) -> exp.Expr | None:
        snapshot = system_tables.snapshot(self, catalog, schema, table, hidden)
        return None if snapshot is None else system_tables.values_table(*snapshot)

    # --- housekeeping ---------------------------------------------------------------------------
    def _housekeeping(self) -> None:
        while not self._stopping.wait(0.25):
            now = time.time()
            self.transactions.expire_idle(now)
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
                    query.fail(
                        TrinoError(
                            "EXCEEDED_TIME_LIMIT",
                            f"Query exceeded maximum time limit of {limit:.2f}s",
                        )
                    )
                    return
        if now - query.last_heartbeat > self.config.client_timeout_seconds:
            query.fail(
                TrinoError(
                    "ABANDONED_QUERY",
                    f"Query {query.id} was abandoned by the client, as it may have exited or "
                    "stopped checking for query results. Query results have not been accessed "
                    f"since {dt.datetime.fromtimestamp(query.last_heartbeat, dt.UTC).isoformat()}",
                )
            )


class _CatalogView:
    """The engine's catalogs as one session sees them: what `dialect.plan` asks about."""

    def __init__(self, engine: Engine, session: Session):
        self._engine, self.session = engine, session

    def qualify(self, catalog: str | None, schema: str | None) -> tuple[str, str]:
        """A table's catalog and schema, the session's filling in what the statement leaves out."""
        catalog = (catalog or self.session.catalog or "").lower() or None
        schema = schema or self.session.schema
        if schema is None:  # Trino asks for the schema first
            raise TrinoError(
                "MISSING_SCHEMA_NAME", "Schema must be specified when session schema is not set"
            )
        if catalog is None:
            raise TrinoError(
                "MISSING_CATALOG_NAME", "Catalog must be specified when session catalog is not set"
            )
        if catalog != "system":
            self._engine.catalogs.spec(catalog)
        return catalog, schema.lower()

    def system_table(
        self, catalog: str, schema: str, table: str, hidden: bool = False
    ) -> exp.Expr | None:
        return self._engine.system_table(catalog, schema, table, hidden)

    def has_function(self, name: str) -> bool:
        return self._engine.has_function(name)

    def connector(self, catalog: str) -> str:
        return self._engine.catalogs.spec(catalog).connector

    def column_types(self) -> dict:
        """{catalog: {schema: {table: {column: DuckDB type}}}} of every catalog, for type
        inference."""
        mapping: dict = {}
        for catalog in self._engine.catalogs.names:
            for schema, table, column, _, _, _, duck_type, _ in self._engine.catalogs.columns(
                catalog
            ):
                mapping.setdefault(catalog, {}).setdefault(schema, {}).setdefault(table, {})[
                    column
                ] = duck_type
        return mapping


def duckdb_time_zone(zone: str) -> str:
    """A Trino zone as DuckDB's TimeZone setting: names as they are, whole-hour offsets as Etc/GMT
    zones (whose sign is inverted); other offsets DuckDB cannot follow."""
    if not _TIME_ZONE.fullmatch(zone):
        raise TrinoError("NOT_SUPPORTED", f"Time zone not supported: {zone}")
    if zone[0] in "+-":
        hours, minutes = zone[1:].split(":")
        if minutes != "00":
            raise TrinoError(
                "NOT_SUPPORTED", f"Time zone offset {zone} is not supported by the local engine"
            )
        return "UTC" if int(hours) == 0 else f"Etc/GMT{'-' if zone[0] == '+' else '+'}{int(hours)}"
    return zone


def _aborted() -> TrinoError:
    return TrinoError(
        "TRANSACTION_ALREADY_ABORTED",
        "Current transaction is aborted, commands ignored until end of transaction block",
    )


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _validate_session_property(name: str, value: str | None, catalogs: Catalogs) -> None:
    """As Trino: a catalog property needs its catalog and the connector's property; a system one
    must exist; a value is checked where the engine knows its domain (None: RESET, no value)."""
    catalog, dot, catalog_property = name.partition(".")
    if dot:
        if catalog_property not in catalogs.spec(catalog).session_properties:
            raise TrinoError(
                "INVALID_SESSION_PROPERTY", f"Session property '{name}' does not exist"
            )
        return
    if name not in SESSION_PROPERTIES:
        raise TrinoError("INVALID_SESSION_PROPERTY", f"Session property '{name}' does not exist")
    if value is None:
        return
    if name in ("query_max_run_time", "query_max_execution_time"):
        parse_duration(value)
    if name == "join_distribution_type" and value.upper() not in _JOIN_DISTRIBUTION_TYPES:
        raise TrinoError(
            "INVALID_SESSION_PROPERTY",
            f"Invalid value [{value}]. Valid values: [{', '.join(_JOIN_DISTRIBUTION_TYPES)}]",
        )


_JOIN_DISTRIBUTION_TYPES = ("BROADCAST", "PARTITIONED", "AUTOMATIC")


_BIGINT = trino_type(duckdb.sqltype("BIGINT"))
_BOOLEAN = trino_type(duckdb.sqltype("BOOLEAN"))
_INTEGER = trino_type(duckdb.sqltype("INTEGER"))
_VARCHAR = trino_type(duckdb.sqltype("VARCHAR"))


def _update(update_type: str, count: int | None) -> Result:
    """Trino answers DML with one `rows bigint` row, and other updates with no columns at all."""
    if count is not None:
        return Result(
            [column_json("rows", _BIGINT)],
            list,
            rows=[[count]],
            update_type=update_type,
            update_count=count,
        )
    return Result([], list, rows=[], update_type=update_type)


def _rows_result(names: list[str], rows: list[list]) -> Result:
    """Rows of varchar columns, as Trino's metadata statements (queries on information_schema)
    give."""
    return Result([column_json(name, _VARCHAR) for name in names], list, rows=rows)


def _bounded_rows_result(names: list[str], rows: list[list]) -> Result:
    """Rows of varchar(n) columns, n the longest value: Trino answers these statements from
    VALUES."""
    return Result(
        [column_json(name, bounded_varchar([r[i] for r in rows])) for i, name in enumerate(names)],
        list,
        rows=rows,
    )
