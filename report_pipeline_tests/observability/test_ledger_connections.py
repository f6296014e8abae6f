"""The ledger's PostgreSQL connections: a statement timeout on every statement, except the lock
waits that are the point (a saga's exclusive lock, the migration lock)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.storage.engine import STATEMENT_TIMEOUT_SECONDS
from report_pipeline.storage.schema import MIGRATION_LOCK
from report_pipeline_tests.conftest import run_in_thread, wait_until
from report_pipeline_tests.saga.conftest import isolated_schema_url


def show(ledger: SqlLedger, setting: str) -> str:
    with ledger.engine.connect() as connection:
        return str(connection.execute(sa.text(f"SHOW {setting}")).scalar())


def test_ledger_statements_run_under_the_statement_timeout(postgres_url) -> None:
    ledger = SqlLedger(postgres_url)
    assert show(ledger, "statement_timeout") == f"{STATEMENT_TIMEOUT_SECONDS}s"
    ledger.close()


def test_a_urls_own_options_are_kept_and_the_server_cancels_a_statement_past_its_timeout(
    postgres_url,
) -> None:
    ledger = SqlLedger(
        f"{postgres_url}?options=-c%20statement_timeout%3D100%20-c%20application_name%3Dmine"
    )
    assert (show(ledger, "statement_timeout"), show(ledger, "application_name")) == (
        "100ms",
        "mine",
    )
    with (
        pytest.raises(sa.exc.OperationalError, match="statement timeout"),
        ledger.engine.connect() as connection,
    ):
        connection.execute(sa.text("SELECT pg_sleep(5)"))
    ledger.close()


def hold_exclusive(ledger: SqlLedger) -> contextlib.AbstractContextManager:
    return ledger.exclusive("s1")


@contextlib.contextmanager
def hold_migration_lock(ledger: SqlLedger) -> Iterator[None]:
    with ledger.engine.begin() as connection:
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        yield


def take_exclusive(ledger: SqlLedger) -> str:
    with ledger.exclusive("s1"):
        return "done"


def migrate(ledger: SqlLedger) -> str:
    ledger.migrate()
    return "done"


@pytest.mark.parametrize(
    ("hold", "wait"),
    [(hold_exclusive, take_exclusive), (hold_migration_lock, migrate)],
    ids=["a sagas exclusive lock", "the migration lock"],
)
def test_waiting_for_an_advisory_lock_is_not_cut_short_by_the_statement_timeout(
    postgres_url, hold, wait
) -> None:
    ledger = SqlLedger(isolated_schema_url(postgres_url) + "%20-c%20statement_timeout%3D200")
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with hold(ledger):
            held.set()
            release.wait(timeout=30)

    holding, _ = run_in_thread(holder)
    assert held.wait(timeout=10)
    waiter, outcome = run_in_thread(lambda: wait(ledger))
    with ledger.engine.connect() as connection:
        waiting = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        wait_until(lambda: connection.execute(waiting).scalar() == 1)
    time.sleep(0.5)  # the waiter has now waited well past the 200 ms statement timeout
    release.set()
    holding.join(timeout=10)
    waiter.join(timeout=30)
    assert outcome == {"result": "done"}
    ledger.close()
