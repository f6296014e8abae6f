"""One statement's life on the engine: state, progress, results, and how it ends.

A Query is shared by the thread that executes it on DuckDB and the HTTP threads that poll,
cancel or look it up; every field that changes is guarded by its condition variable.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import duckdb

from report_pipeline.local_trino.errors import TrinoError, from_duckdb

_PAUSE_TICK_SECONDS = 0.05  # how soon a stalled statement notices its stall was released
# DuckDB forgets an interrupt that lands before its statement starts executing, so a cancel repeats
# it this often until the executing thread has let go of the statement.
_INTERRUPT_REPEAT_SECONDS = 0.05

# DuckDB stores tables in row groups of this many rows; one row group counts as one "split".
ROWS_PER_SPLIT = 122_880


class QueryState(StrEnum):
    QUEUED = "QUEUED"
    PLANNING = "PLANNING"
    RUNNING = "RUNNING"
    FINISHING = "FINISHING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"

    @property
    def done(self) -> bool:
        return self in (QueryState.FINISHED, QueryState.FAILED)


@dataclass
class Session:
    user: str
    source: str | None = None
    catalog: str | None = None
    schema: str | None = None
    time_zone: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    prepared: dict[str, str] = field(default_factory=dict)
    # X-Trino-Transaction-Id: None (autocommit, cannot start one), "NONE" (autocommit) or an open
    # one's id
    transaction_id: str | None = None

    @property
    def open_transaction_id(self) -> str | None:
        """The explicit transaction the statement runs in; None in autocommit."""
        return None if self.transaction_id in (None, "NONE") else self.transaction_id


@dataclass
class Result:
    """What a finished statement returns: rows to page through, or an update's outcome."""

    columns: list[dict]
    encode: Any
    cursor: Any = None  # the DuckDB cursor rows are fetched from, for queries
    rows: list[list] | None = None  # rows known up front (updates, coordinator answers)
    update_type: str | None = None
    update_count: int | None = None


class Query:
    def __init__(self, query_id: str, slug: str, sql: str, session: Session):
        self.id = query_id
        self.slug = slug
        self.sql = sql
        self.session = session
        self.state = QueryState.QUEUED
        self.error: TrinoError | None = None
        self.result: Result | None = None
        self.response_headers: dict[str, list[str]] = {}
        self.fault: Any = None  # the injected fault this statement is subject to, if any
        self.drop_connections = False
        self.created = time.time()
        self.started: float | None = None
        self.ended: float | None = None
        self.last_heartbeat = self.created
        self.input_rows = 0
        self.input_bytes = 0
        self.delivered_rows = 0
        self._progress = 0.0
        self._exhausted = False
        self._duck: Any = None  # the DuckDB connection running the statement
        self._cancelled = threading.Event()
        # set once no engine thread executes the statement any more
        self.stopped = threading.Event()
        self._changed = threading.Condition()
        self.page_token = 0  # the last token served, and its document (for retries)
        self.page_document: dict | None = None
        self.page_lock = threading.Lock()

    # --- transitions, called by the executing thread --------------------------------------------
    def begin(self, state: QueryState) -> None:
        with self._changed:
            if self.state.done:
                raise _Stopped()
            if state == QueryState.RUNNING and self.started is None:
                self.started = time.time()
            self.state = state
            self._changed.notify_all()

    def attach(self, duck: Any) -> None:
        """Register the DuckDB connection that runs the statement, so a cancel can interrupt it."""
        with self._changed:
            if self.state.done:
                raise _Stopped()
            self._duck = duck

    def succeed(self, result: Result) -> None:
        with self._changed:
            if self.state.done:
                return
            self.result = result
            if result.rows is not None:
                # An update or a coordinator answer is complete (and committed) once computed,
                # whether or not the client ever fetches its one row.
                self.state = QueryState.FINISHED
                self.ended = time.time()
            self._progress = 100.0
            self._changed.notify_all()

    def fail(self, error: TrinoError) -> bool:
        """End the statement with an error; False if it had already ended."""
        with self._changed:
            if self.state.done:
                return False
            self.error = error.with_traceback(None)  # a stored traceback would pin DuckDB objects
            self.state = QueryState.FAILED
            self.ended = time.time()
            duck, self._duck = self._duck, None
            self._cancelled.set()
            self._changed.notify_all()
        if duck is not None and not self._interrupt(duck):
            threading.Thread(
                target=self._interrupt_until_stopped,
                args=(duck,),
                name=f"interrupt-{self.id}",
                daemon=True,
            ).start()
        return True

    def _interrupt(self, duck: Any) -> bool:
        """Interrupt DuckDB; True once the executing thread has stopped."""
        # the statement may have finished and closed its connection meanwhile
        with contextlib.suppress(duckdb.ConnectionException):
            duck.interrupt()
        return self.stopped.is_set()

    def _interrupt_until_stopped(self, duck: Any) -> None:
        while not self.stopped.wait(_INTERRUPT_REPEAT_SECONDS) and not self._interrupt(duck):
            pass

    def pause(self, seconds: float, released: threading.Event) -> None:
        """Wait as a stalled statement would, until `seconds` pass or the stall is released; stops
        the statement when it is cancelled meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._cancelled.wait(
            min(_PAUSE_TICK_SECONDS, max(0.0, deadline - time.monotonic()))
        ):
            if released.is_set() or time.monotonic() >= deadline:
                return
        raise _Stopped()

    # --- reads, called by HTTP threads ----------------------------------------------------------
    def touch(self) -> None:
        self.last_heartbeat = time.time()

    def wait(self, timeout: float) -> None:
        """Long-poll: return when there is something new to say, or after `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self.state.done or self.result is not None, timeout)

    def next_rows(self, max_rows: int) -> tuple[list[list], bool]:
        """The next page of rows and whether they were the last; marks the query FINISHED then."""
        result = self.result
        assert result is not None
        if result.rows is not None:
            rows, result.rows = result.rows, []
        else:
            try:
                rows = [result.encode(r) for r in result.cursor.fetchmany(max_rows)]
            except duckdb.Error as error:
                # A cancel interrupts the cursor mid-fetch (the query has failed already, and that
                # error stands); otherwise the failure is the statement's own, surfacing while
                # streaming.
                raise from_duckdb(error) from None
        last = result.rows is not None or len(rows) < max_rows
        self.delivered_rows += len(rows)
        if last:
            self.release()
            with self._changed:
                if not self.state.done:
                    self.state = QueryState.FINISHED
                    self.ended = time.time()
                    self._duck = None
                    self._changed.notify_all()
        return rows, last

    def release(self) -> None:
        """Close the DuckDB cursor that holds the result; call with `page_lock` held or from its
        owner."""
        result = self.result
        if result is not None and result.cursor is not None:
            result.cursor.close()
            result.cursor = None

    def progress(self) -> float:
        duck = self._duck
        if duck is not None and self.state == QueryState.RUNNING and self.result is None:
            try:
                value = duck.query_progress()
            except Exception:
                value = -1
            if value > self._progress:
                self._progress = min(float(value), 99.0)
        return self._progress

    def stats(self) -> dict:
        now = time.time()
        end = self.ended or now
        running_since = self.started or end
        percent = self.progress()
        total_splits = max(1, -(-self.input_rows // ROWS_PER_SPLIT)) if self.started else 0
        completed = (
            round(total_splits * percent / 100)
            if not self.state.done or self.error
            else total_splits
        )
        if self.state == QueryState.FINISHED:
            percent, completed = 100.0, total_splits
        running = self.state == QueryState.RUNNING and completed < total_splits
        fraction = completed / total_splits if total_splits else 0.0
        wall_ms = int((end - running_since) * 1000)
        stats: dict[str, Any] = {
            "state": self.state.value,
            "queued": self.state == QueryState.QUEUED,
            "scheduled": self.started is not None,
            "nodes": 1,
            "totalSplits": total_splits,
            "queuedSplits": 0 if self.started else total_splits,
            "runningSplits": 1 if running else 0,
            "completedSplits": completed,
            "cpuTimeMillis": wall_ms,
            "wallTimeMillis": wall_ms,
            "queuedTimeMillis": int(((self.started or end) - self.created) * 1000),
            "elapsedTimeMillis": int((end - self.created) * 1000),
            "processedRows": int(self.input_rows * fraction),
            "processedBytes": int(self.input_bytes * fraction),
            "physicalInputBytes": int(self.input_bytes * fraction),
            "peakMemoryBytes": 0,
            "spilledBytes": 0,
        }
        if stats["scheduled"] and total_splits > 0:
            stats["progressPercentage"] = percent
        return stats

    def info(self, base_url: str) -> dict:
        """The query's record as `GET /v1/query/{id}` returns it."""
        doc = {
            "queryId": self.id,
            "state": self.state.value,
            "query": self.sql,
            "self": f"{base_url}/v1/query/{self.id}",
            "session": {
                "user": self.session.user,
                "source": self.session.source,
                "catalog": self.session.catalog,
                "schema": self.session.schema,
            },
            "queryStats": {
                **self.stats(),
                "createTime": _iso(self.created),
                "endTime": _iso(self.ended) if self.ended else None,
            },
            "updateType": self.result.update_type if self.result else None,
            "scheduled": self.started is not None,
        }
        if self.error:
            doc["errorType"] = self.error.error.type.value
            doc["errorCode"] = {
                "code": self.error.error.code,
                "name": self.error.name,
                "type": self.error.error.type.value,
            }
            doc["failureInfo"] = self.error.to_json()["failureInfo"]
        return doc


class _Stopped(Exception):
    """The statement ended (cancelled, killed, timed out) while it was being prepared."""


def _iso(timestamp: float) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp))
        + f".{int(timestamp % 1 * 1000):03d}Z"
    )
