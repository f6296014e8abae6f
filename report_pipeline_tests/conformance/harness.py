"""Runs corpus entries on a server through the real `trino` client, and compares two servers'
answers.

What is compared is what a client sees: column names, type strings and type signatures (the raw
column JSON the client keeps on its query object), the client's mapped row values, the update type
and count, and the error name. Every HTTP request has a timeout, and a statement still running after
STATEMENT_TIMEOUT is cancelled and recorded as CLIENT_TIMEOUT, so a hung server cannot hang a run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import math
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import trino
from trino.exceptions import TrinoQueryError
from trino.transaction import IsolationLevel

from report_pipeline_tests.conformance.corpus import Entry, SessionSpec, Statement

REQUEST_TIMEOUT = 30.0  # seconds, each HTTP request of the client
STATEMENT_TIMEOUT = 120.0  # seconds, one statement from submission to its last row
REL_TOLERANCE = 1e-9  # doubles: DuckDB and Trino may sum in a different order
USER = "conformance"


@dataclass(frozen=True)
class Server:
    name: str
    host: str
    port: int


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    signature: Any  # the typeSignature JSON as the server sent it


@dataclass(frozen=True)
class Outcome:
    columns: tuple[Column, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    update_type: str | None = None
    update_count: int | None = None  # the client's rowcount; None where it says -1
    error_name: str | None = None
    error_message: str = field(default="", compare=False)

    @property
    def failed(self) -> bool:
        return self.error_name is not None

    def summary(self) -> str:
        """The answer in a few words, for a divergence line."""
        if self.failed:
            return f"{self.error_name} ({_clip(self.error_message, 100)})"
        if self.update_type is not None:
            return f"{self.update_type}" + (
                f" {self.update_count} rows" if self.update_count is not None else ""
            )
        first = f", first {_show(self.rows[0])}" if self.rows else ""
        return f"{len(self.rows)} rows{first}"


def new_run_name() -> str:
    return f"conformance_{secrets.token_hex(4)}"


# --- running --------------------------------------------------------------------------------------


def connect(server: Server, session: SessionSpec) -> trino.dbapi.Connection:
    return trino.dbapi.connect(
        host=server.host,
        port=server.port,
        user=USER,
        catalog=session.catalog,
        schema=session.schema_,
        timezone=session.time_zone,
        session_properties=dict(session.properties),
        isolation_level=IsolationLevel[session.isolation_level],
        legacy_prepared_statements=False,  # EXECUTE IMMEDIATE: no probe statement in between
        request_timeout=REQUEST_TIMEOUT,
        max_attempts=1,  # no retries: see each answer as it is
    )


def execute(
    connection: trino.dbapi.Connection, statement: Statement, timeout: float = STATEMENT_TIMEOUT
) -> Outcome:
    """One statement, all its rows, as the client maps them."""
    timed_out = threading.Event()
    timer: threading.Timer | None = None
    try:
        cursor = connection.cursor()  # in a transactional session this starts the transaction

        def cancel() -> None:
            timed_out.set()
            cursor.cancel()

        timer = threading.Timer(timeout, cancel)
        timer.daemon = True
        timer.start()
        cursor.execute(statement.sql, statement.parameters)
        rows = cursor.fetchall()
        # the raw column JSON: description's type_code is only the type string
        columns = tuple(
            Column(c["name"], c["type"], c.get("typeSignature"))
            for c in (cursor._query.columns or [])
        )
        count = cursor.rowcount
        return Outcome(
            columns,
            tuple(tuple(row) for row in rows),
            cursor.update_type,
            None if count == -1 else count,
        )
    except Exception as error:
        if timed_out.is_set():
            return Outcome(
                error_name="CLIENT_TIMEOUT", error_message=f"still running after {timeout}s"
            )
        if isinstance(error, TrinoQueryError):
            return Outcome(error_name=error.error_name, error_message=error.message)
        return Outcome(error_name=f"CLIENT:{type(error).__name__}", error_message=str(error))
    finally:
        if timer is not None:
            timer.cancel()


def _close(connection: trino.dbapi.Connection) -> None:
    if connection.transaction is not None:
        # end a transaction the entries left open rather than let it expire; best effort, as the
        # connection is closed anyway
        with contextlib.suppress(Exception):
            connection.rollback()
    connection.close()


def run_entries(server: Server, entries: list[Entry], run: str) -> list[Outcome]:
    """A corpus file's entries in order on one connection; an entry with a session of its own gets
    a fresh connection. In a transactional session, after a COMMIT or ROLLBACK (answered or failed)
    the next entry gets a fresh connection, so a new transaction: the client would keep sending the
    ended transaction's id (it ignores the server's clear-transaction header)."""
    outcomes: list[Outcome] = []
    shared: trino.dbapi.Connection | None = None
    try:
        for entry in entries:
            statement = entry.statement(run)
            try:
                connection = (
                    shared
                    if shared is not None and not entry.own_connection
                    else connect(server, entry.session)
                )
            except Exception as error:
                outcomes.append(
                    Outcome(error_name=f"CLIENT:{type(error).__name__}", error_message=str(error))
                )
                continue
            if entry.own_connection:
                try:
                    outcomes.append(execute(connection, statement))
                finally:
                    _close(connection)
                continue
            shared = connection
            outcome = execute(shared, statement)
            outcomes.append(outcome)
            ends_transaction = statement.sql.strip().upper() in ("COMMIT", "ROLLBACK")
            if ends_transaction and shared.transaction is not None:
                shared.close()
                shared = None
    finally:
        if shared is not None:
            _close(shared)
    return outcomes


def run_on_both(
    local: Server, trino_server: Server, entries: list[Entry], run: str
) -> tuple[list[Outcome], list[Outcome]]:
    """The same entries on both servers, side by side (each server runs them in order)."""
    with ThreadPoolExecutor(2) as pool:
        on_local = pool.submit(run_entries, local, entries, run)
        on_trino = pool.submit(run_entries, trino_server, entries, run)
        return on_local.result(), on_trino.result()


def prepare(server: Server, run: str) -> None:
    """The run's schema `lake.<run>`, where the DDL/DML entries work."""
    connection = connect(server, SessionSpec())
    outcome = execute(connection, Statement(f"CREATE SCHEMA lake.{run}", None))
    connection.close()
    if outcome.failed:
        raise RuntimeError(f"{server.name}: cannot create schema lake.{run}: {outcome.summary()}")


def clean_up(server: Server, run: str) -> list[str]:
    """Drop every table and schema named after the run in `lake` and `memory`; what could not be
    dropped."""
    problems = []
    connection = connect(server, SessionSpec())

    def rows(sql: str) -> list[tuple]:
        outcome = execute(connection, Statement(sql, None))
        return [] if outcome.failed else list(outcome.rows)

    def drop(sql: str) -> None:
        outcome = execute(connection, Statement(sql, None))
        if outcome.failed:
            problems.append(f"{server.name}: {sql}: {outcome.summary()}")

    for catalog in ("lake", "memory"):
        schemas = [s for (s,) in rows(f"SHOW SCHEMAS FROM {catalog}") if s.startswith(run)] + [
            "default"
        ]
        for schema in schemas:
            for name, kind in rows(
                f"SELECT table_name, table_type FROM {catalog}.information_schema.tables "
                f"WHERE table_schema = '{schema}'"
            ):
                if schema.startswith(run) or name.startswith(run):
                    kind_word = "VIEW" if kind == "VIEW" else "TABLE"
                    drop(f'DROP {kind_word} {catalog}."{schema}"."{name}"')
            if schema.startswith(run):
                drop(f'DROP SCHEMA {catalog}."{schema}"')
    connection.close()
    return problems


# --- comparing ------------------------------------------------------------------------------------


def expectation_problems(entry: Entry, trino_outcome: Outcome) -> list[str]:
    """Where the corpus entry itself is wrong about Trino: an error case that does not fail as
    stated, or a statement that fails without being marked an error case."""
    if entry.spec.error is not None and trino_outcome.error_name != entry.spec.error:
        return [
            f"corpus: expected Trino to fail {entry.spec.error}, "
            f"Trino answered {trino_outcome.summary()}"
        ]
    if entry.spec.error is None and trino_outcome.failed:
        return [f"corpus: Trino fails {trino_outcome.summary()}; fix the entry or mark it `error:`"]
    return []


def differences(entry: Entry, sql: str, local: Outcome, trino_outcome: Outcome) -> list[str]:
    """Each way the local engine's answer differs from Trino's, one readable line each."""
    if entry.spec.local_not_supported is not None:
        if local.error_name == "NOT_SUPPORTED":
            return []
        return [
            f"stale local_not_supported mark ({entry.spec.local_not_supported}): "
            f"the local engine answered {local.summary()}"
        ]
    if entry.spec.known_divergence is not None:
        if local.error_name == "NOT_SUPPORTED" and not trino_outcome.failed:
            return [
                f"known_divergence mark ({entry.spec.known_divergence}) on a construct the local "
                "engine now refuses: mark it local_not_supported instead"
            ]
        unmarked = replace(entry, spec=entry.spec.model_copy(update={"known_divergence": None}))
        if differences(unmarked, sql, local, trino_outcome):
            return []
        return [
            f"stale known_divergence mark ({entry.spec.known_divergence}): "
            "the local engine now answers as Trino"
        ]
    if local.failed or trino_outcome.failed:
        if local.error_name == trino_outcome.error_name:
            return []
        return [f"outcome: local {local.summary()} | trino {trino_outcome.summary()}"]
    lines = []
    if (local.update_type, local.update_count) != (
        trino_outcome.update_type,
        trino_outcome.update_count,
    ):
        lines.append(
            f"update: local {local.update_type} count {local.update_count} | "
            f"trino {trino_outcome.update_type} count {trino_outcome.update_count}"
        )
    lines += _column_differences(local.columns, trino_outcome.columns)
    if entry.spec.compare_rows:
        lines += _row_differences(local.rows, trino_outcome.rows, entry.ordered(sql))
    return lines


def _column_differences(local: tuple[Column, ...], other: tuple[Column, ...]) -> list[str]:
    lines = []
    names = ([c.name for c in local], [c.name for c in other])
    if names[0] != names[1]:
        lines.append(f"column names: local {names[0]} | trino {names[1]}")
    types = ([c.type for c in local], [c.type for c in other])
    if types[0] != types[1]:
        lines.append(f"column types: local {types[0]} | trino {types[1]}")
    else:
        for mine, theirs in zip(local, other, strict=True):
            if mine.signature != theirs.signature:
                lines.append(
                    f"type signature of {theirs.name} ({theirs.type}): "
                    f"local {mine.signature} | trino {theirs.signature}"
                )
    return lines


def _row_differences(
    local: tuple[tuple, ...], other: tuple[tuple, ...], ordered: bool
) -> list[str]:
    mine, theirs = [_Row.of(r) for r in local], [_Row.of(r) for r in other]
    if not ordered:
        # a multiset: both sorted the same way (doubles rounded, so near-equal sort alike)
        mine.sort(key=_Row.sort_key)
        theirs.sort(key=_Row.sort_key)
    # the row counts may differ (reported below): compare the rows both have
    pairs = zip(mine, theirs, strict=False)
    differing = [i for i, (a, b) in enumerate(pairs) if not _same(a.values, b.values)]
    where = "row" if ordered else "sorted row"
    first = (
        f"first difference at {where} {differing[0]}: local {_show(mine[differing[0]].original)} | "
        f"trino {_show(theirs[differing[0]].original)}"
        if differing
        else ""
    )
    if len(mine) != len(theirs):
        return [
            f"row count: local {len(mine)} | trino {len(theirs)}" + (f"; {first}" if first else "")
        ]
    if differing:
        return [f"rows: {len(differing)} of {len(mine)} differ; {first}"]
    return []


@dataclass(frozen=True)
class _Row:
    values: tuple  # each value in its strict comparable form (_value)
    original: tuple  # as the client mapped it, for display

    @classmethod
    def of(cls, row: tuple) -> _Row:
        return cls(tuple(_value(v) for v in row), row)

    def sort_key(self) -> str:
        return _sort_key(self.values)


class _Float(float):
    """A double, kept apart so that comparing uses the tolerance."""


def _value(v: Any) -> Any:
    """A value in a form where equal means equal to a client (Python's 1 == True, Decimal('1.0') ==
    Decimal('1') and equal instants in different zones would hide real differences)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, float):
        return _Float(v)
    if isinstance(v, decimal.Decimal):
        return ("decimal", str(v))
    if isinstance(v, (dt.datetime, dt.time)):
        return (type(v).__name__, v.isoformat(), str(v.tzinfo) if v.tzinfo else None)
    if isinstance(v, dict):
        return ("map", tuple(sorted(((_value(k), _value(x)) for k, x in v.items()), key=_sort_key)))
    if isinstance(v, (list, tuple)):
        return ("seq", tuple(_value(x) for x in v))
    if v is None or isinstance(v, (int, str, bytes, dt.date, dt.timedelta)):
        return v
    return (type(v).__name__, str(v))  # uuid, ip address, relativedelta, ...


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, _Float) and isinstance(b, _Float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b or math.isclose(a, b, rel_tol=REL_TOLERANCE)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _sort_key(value: Any) -> str:
    def rounded(v: Any) -> Any:
        if isinstance(v, _Float):
            return ("double", f"{v:.6g}")
        if isinstance(v, tuple):
            return tuple(rounded(x) for x in v)
        return v

    return repr(rounded(value))


def _show(value: Any) -> str:
    return _clip(repr(value), 160)


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# --- a whole file ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Divergence:
    entry: Entry
    sql: str
    detail: str

    def __str__(self) -> str:
        return f"{self.entry.where} {_clip(self.sql, 100)!r}: {self.detail}"


def check_entries(
    local: Server, trino_server: Server, entries: list[Entry], run: str
) -> list[Divergence]:
    """Run the entries on both servers: every divergence, and every entry that is wrong about
    Trino."""
    local_outcomes, trino_outcomes = run_on_both(local, trino_server, entries, run)
    found = []
    for entry, mine, theirs in zip(entries, local_outcomes, trino_outcomes, strict=True):
        sql = entry.statement(run).sql
        for detail in expectation_problems(entry, theirs) + differences(entry, sql, mine, theirs):
            found.append(Divergence(entry, sql, detail))
    return found
