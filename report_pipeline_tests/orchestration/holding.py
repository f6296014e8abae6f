"""Holding a report step's statement in the running state on either backend, so a test can terminate
or kill the run while it runs there.

The local engine stalls it (a fault). A real Trino cannot be told to stall, so the test holds an
ACCESS EXCLUSIVE lock on the PostgreSQL table the statement reads in the `lake` database: Trino
plans it, starts it, and its scan waits on PostgreSQL, RUNNING on the coordinator, until the lock
goes or the query is cancelled. Steps that read no source table (the drop steps) cannot be held
this way, nor one of two branches that read the same table; they are held on the local engine only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg2
from psycopg2 import sql

from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline_tests.conftest import POSTGRES, Backend, RunningQuery, wait_for, wait_until
from report_pipeline_tests.orchestration.conftest import STEP_STATEMENTS

# The source table each step's statement scans (the lock that holds it on a real Trino). The weekly
# report's two branches both scan `events`: a lock would hold both at once, a different case (every
# branch of a stopped run, issue 14), so they are held on the local engine only.
SOURCE_TABLES = {
    ("daily_country_report", "create_summary"): "events",
    ("daily_country_report", "write_report"): "users",
    ("weekly_engagement_report", "write_report"): "users",
}


@dataclass
class HeldStatement:
    backend: Backend
    pattern: str
    query_id: str

    def stopped_within(self, seconds: float) -> bool:
        """True once the server no longer runs the statement, within `seconds`."""
        return (
            wait_for(
                lambda: all(
                    q.query_id != self.query_id for q in self.backend.running_queries(self.pattern)
                ),
                seconds,
                interval=0.05,
            )
            is not None
        )


def holdable(backend_name: str, report: str, step: str) -> bool:
    return backend_name == "local" or (report, step) in SOURCE_TABLES


@contextmanager
def holding(
    backend: Backend, report: str, step: str, seconds: float
) -> Iterator[Callable[..., HeldStatement]]:
    """While open, the step's statement is held (on the local engine for at most `seconds`); when
    the block ends it is let go. Yields a function that waits for the statement to run: it returns
    the statement."""
    pattern = STEP_STATEMENTS[report][step]
    lock: psycopg2.extensions.connection | None = None
    stall: Fault | None = None
    if isinstance(backend.server, LocalTrino):
        stall = backend.server.inject(Fault(pattern=pattern, action="stall", seconds=seconds))
    else:
        lock = psycopg2.connect(
            host=POSTGRES.host,
            port=POSTGRES.port,
            user=POSTGRES.user,
            password=POSTGRES.password,
            dbname=backend.server.lake_database,
        )
        with lock.cursor() as cursor:  # the transaction stays open: the lock is held until rollback
            cursor.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier("analytics", SOURCE_TABLES[report, step])
                )
            )

    def running(timeout: float = 60) -> HeldStatement:
        found: list[RunningQuery] = []

        def started() -> bool:
            found[:] = [q for q in backend.running_queries(pattern) if q.state == "RUNNING"]
            return bool(found)

        wait_until(started, timeout=timeout, interval=0.05)
        return HeldStatement(backend, pattern, found[0].query_id)

    try:
        yield running
    finally:  # the hold ends with the block on both backends: a statement still alive runs on
        if stall is not None:
            stall.release()
        if lock is not None:
            lock.rollback()
            lock.close()
