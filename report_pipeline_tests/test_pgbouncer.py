"""PgBouncer in front of PostgreSQL (report_pipeline/pgbouncer.py): the private instance `make dev`
starts and the compose service's command serve real connections, in session mode (a session
advisory lock stays with the client that took it); `make dev` sends Dagster's storage through it
and the ledger directly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from report_pipeline import settings
from report_pipeline.pgbouncer import PgBouncer, PgBouncerError
from report_pipeline.postgres import PostgresSettings
from report_pipeline_tests.conftest import POSTGRES, free_port, wait_until

LOCK_KEY = 7_031_402  # below 2**32: pg_locks shows it as objid, classid 0


@pytest.fixture
def pgbouncer() -> Iterator[PgBouncer]:
    bouncer = PgBouncer(POSTGRES, free_port())
    try:
        bouncer.start()
    except PgBouncerError as error:  # e.g. not installed: one line, no skip
        pytest.fail(str(error), pytrace=False)
    try:
        yield bouncer
    finally:
        bouncer.stop()


def _holders(settings: PostgresSettings, database: str) -> list[int]:
    """The server pids holding LOCK_KEY in `database`."""
    connection = settings.connect(database)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s "
                "AND l.classid = 0 AND l.objid = %s AND l.objsubid = 1",
                [database, LOCK_KEY],
            )
            return [pid for (pid,) in cursor.fetchall()]
    finally:
        connection.close()


def test_session_pooling_pins_a_session_advisory_lock(
    pgbouncer: PgBouncer, postgres_database: dict
) -> None:
    database = postgres_database["dbname"]
    holder = pgbouncer.settings.connect(database)
    other = pgbouncer.settings.connect(database)
    # no open transaction may tie a client to a server connection: only session pooling should
    holder.autocommit = other.autocommit = True
    try:
        with holder.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)
            cursor.execute("SELECT pg_backend_pid(), pg_advisory_lock(%s)", [LOCK_KEY])
            row = cursor.fetchone()
            assert row is not None
            pid = row[0]
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid(), pg_try_advisory_lock(%s)", [LOCK_KEY])
            row = cursor.fetchone()
            assert row is not None
            assert row[0] != pid
            assert row[1] is False  # held by another session (one's own lock is reentrant)
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone() == (pid,)
        assert _holders(POSTGRES, database) == [pid]
    finally:
        holder.close()
        other.close()
    # the client gone, PgBouncer's reset (DISCARD ALL) frees its server connection's locks
    wait_until(lambda: _holders(POSTGRES, database) == [], timeout=10)


def test_queries_through_pgbouncer_are_counted_for_their_database(
    pgbouncer: PgBouncer, postgres_database: dict
) -> None:
    database = postgres_database["dbname"]
    before = pgbouncer.queries_served(database)
    connection = pgbouncer.settings.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()
    wait_until(lambda: pgbouncer.queries_served(database) > before, timeout=30)


def _serves(settings_: PostgresSettings) -> bool:
    try:
        settings_.connect("postgres").close()
    except psycopg2.OperationalError:
        return False
    return True


def test_the_compose_services_command_serves_the_pg_server_until_stopped() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "report-pipeline"),
            "pgbouncer",
            "--listen-port",
            str(port),
        ],
        env={
            **os.environ,
            settings.PGHOST.name: POSTGRES.host,
            settings.PGPORT.name: str(POSTGRES.port),
            settings.PGUSER.name: POSTGRES.user,
            settings.PGPASSWORD.name: POSTGRES.password,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        through = PostgresSettings("127.0.0.1", port, POSTGRES.user, POSTGRES.password)
        wait_until(lambda: _serves(through) or process.poll() is not None, timeout=30)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        connection = through.connect("postgres")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (POSTGRES.user,)
        connection.close()
        process.send_signal(signal.SIGTERM)  # what `docker compose stop` sends
        process.wait(timeout=30)  # PgBouncer's fast exit (its status is 1 for a SIGTERM)
        assert not _serves(through)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_a_missing_pgbouncer_is_one_clear_line(monkeypatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("report_pipeline.pgbouncer.SBIN_PGBOUNCER", "/nonexistent/pgbouncer")
    with pytest.raises(
        PgBouncerError, match=r"^pgbouncer is not installed: run make system-packages$"
    ):
        PgBouncer(POSTGRES, free_port()).start()


def test_dev_sends_dagsters_storage_through_pgbouncer_and_the_ledger_directly() -> None:
    bouncer = PostgresSettings("127.0.0.1", 6433, POSTGRES.user, POSTGRES.password)
    environment = settings.postgres_environment(POSTGRES, "db", dagster_server=bouncer)
    assert (environment["DAGSTER_PG_HOST"], environment["DAGSTER_PG_PORT"]) == ("127.0.0.1", "6433")
    assert environment["REPORT_PIPELINE_LEDGER_URL"] == POSTGRES.url("db")
