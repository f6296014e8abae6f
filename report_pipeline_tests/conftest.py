"""Shared fixtures: the local Trino-compatible engine on a free port, and clients of it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import psycopg2
import pytest
import sqlalchemy as sa
import trino

from report_pipeline.postgres import PostgresSettings
from report_pipeline.local_trino import LocalTrino

# Small enough to generate in a blink, large enough for multi-page results and real aggregates.
TEST_EVENTS = 20_000


# the server .ci/ensure-postgres set up (or PGHOST/PGPORT/PGUSER/PGPASSWORD)
POSTGRES = PostgresSettings.from_env()
PG = {"host": POSTGRES.host, "port": POSTGRES.port, "user": POSTGRES.user, "password": POSTGRES.password}


def _postgres_admin() -> psycopg2.extensions.connection:
    """A connection to the server's `postgres` database; starts a stopped local cluster once."""
    try:
        return psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError:
        versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
        if not versions or not shutil.which("pg_ctlcluster"):
            pytest.fail(f"PostgreSQL is not reachable on {PG['host']}:{PG['port']} and no local cluster is "
                        "installed to start (apt-get install postgresql, or set PGHOST/PGPORT)", pytrace=False)
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"], check=False)
        for _ in range(30):
            try:
                return psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
            except psycopg2.OperationalError:
                time.sleep(1)
        pytest.fail(f"PostgreSQL {versions[-1]} was started but does not answer on {PG['host']}:{PG['port']}",
                    pytrace=False)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[dict]:
    """A fresh database for this test session on the real server, dropped afterwards."""
    name = f"report_pipeline_test_{secrets.token_hex(4)}"
    admin = _postgres_admin()
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {**PG, "dbname": name}
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_database: dict) -> str:
    db = postgres_database
    auth = db["user"] + (f":{db['password']}" if db["password"] else "")
    return f"postgresql+psycopg2://{auth}@{db['host']}:{db['port']}/{db['dbname']}"


@pytest.fixture(scope="session")
def local_trino(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrino]:
    """One engine for the whole session, its catalog in a file so it can be restarted mid-test;
    tests that change it clean up after themselves."""
    data = tmp_path_factory.mktemp("local-trino") / "lake.duckdb"
    with LocalTrino(sample_events=TEST_EVENTS, data=str(data)) as engine:
        yield engine


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "local_trino" in request.fixturenames:
        request.getfixturevalue("local_trino").engine.faults.clear()


Connect = Callable[..., trino.dbapi.Connection]


@pytest.fixture
def connect(local_trino: LocalTrino) -> Iterator[Connect]:
    """Open real `trino` client connections to the engine; all are closed after the test."""
    opened: list[trino.dbapi.Connection] = []

    def open_connection(engine: LocalTrino = local_trino, **options) -> trino.dbapi.Connection:
        options = {"user": "tester", "catalog": engine.catalog, "schema": "analytics", **options}
        connection = trino.dbapi.connect(host=engine.host, port=engine.port, **options)
        opened.append(connection)
        return connection

    yield open_connection
    for connection in opened:
        connection.close()


@pytest.fixture
def cursor(connect: Connect) -> trino.dbapi.Cursor:
    return connect().cursor()


def run_in_thread(target: Callable[[], object]) -> tuple[threading.Thread, dict]:
    """Run `target` on a thread; the dict receives its `result` or `error`."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target()
        except BaseException as error:  # noqa: BLE001 - handed to the test to assert on
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> float:
    """Seconds until `condition()` held; fails the test if it never does within `timeout`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)
    return time.monotonic() - start
