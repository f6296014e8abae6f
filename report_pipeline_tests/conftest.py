"""Shared fixtures: the local Trino-compatible engine on a free port, and clients of it."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import trino

from report_pipeline.fault_proxy import FaultProxy, ProxiedStatement
from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.postgres import PostgresSettings, drop_database
from report_pipeline.trino_server import (
    InstallError,
    TrinoServer,
    TrinoServerError,
    ensure_installed,
)
from report_pipeline_tests.credentials import TestCredentials, make_credentials

# Small enough to generate in a blink, large enough for multi-page results and real aggregates.
TEST_EVENTS = 20_000

# The markers of the slow tiers, by the fixture that makes a test slow: `make test-fast` leaves out
# the tests that need the Dagster webserver and daemon or the real Trino (minutes to start).
TIER_FIXTURES = {"dagster_stack": "stack", "real_trino": "real_trino"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        needed = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        # `backend` asks for the real Trino at run time, for its "trino" parameter only
        if callspec is not None and callspec.params.get("backend") == "trino":
            needed.add("real_trino")
        for fixture, marker in TIER_FIXTURES.items():
            if fixture in needed:
                item.add_marker(marker)


# the server .ci/ensure-postgres set up (or PGHOST/PGPORT/PGUSER/PGPASSWORD)
POSTGRES = PostgresSettings.from_env()
PG: dict[str, Any] = {
    "host": POSTGRES.host,
    "port": POSTGRES.port,
    "user": POSTGRES.user,
    "password": POSTGRES.password,
}


def _postgres_admin() -> psycopg2.extensions.connection:
    """A connection to the server's `postgres` database; starts a stopped local cluster once."""
    try:
        return psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    except psycopg2.OperationalError:
        versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
        if not versions or not shutil.which("pg_ctlcluster"):
            pytest.fail(
                f"PostgreSQL is not reachable on {PG['host']}:{PG['port']} and no local cluster is "
                "installed to start (apt-get install postgresql, or set PGHOST/PGPORT)",
                pytrace=False,
            )
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
            check=False,
        )
        connected: list[psycopg2.extensions.connection] = []

        def answers() -> bool:
            try:
                connected.append(psycopg2.connect(dbname="postgres", connect_timeout=5, **PG))
            except psycopg2.OperationalError:
                return False
            return True

        if wait_for(answers, timeout=30, interval=1) is None:
            pytest.fail(
                f"PostgreSQL {versions[-1]} was started but does not answer on "
                f"{PG['host']}:{PG['port']}",
                pytrace=False,
            )
        return connected[0]


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
    return POSTGRES.url(postgres_database["dbname"])


@pytest.fixture(scope="session")
def local_trino(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalTrino]:
    """One engine for the whole session, its catalog in a file so it can be restarted mid-test;
    tests that change it clean up after themselves."""
    data = tmp_path_factory.mktemp("local-trino") / "lake.duckdb"
    with LocalTrino(
        sample_events=TEST_EVENTS, data=str(data), catalogs=["memory"], fault_injection=True
    ) as engine:
        yield engine


@pytest.fixture(scope="session")
def trino_credentials(tmp_path_factory: pytest.TempPathFactory) -> TestCredentials:
    return make_credentials(tmp_path_factory.mktemp("trino-credentials"), https_port=free_port())


@pytest.fixture(scope="session")
def real_trino(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_database: dict,
    trino_credentials: TestCredentials,
) -> Iterator[TrinoServer]:
    """One real Trino coordinator for the whole session (fetched and cached on first use), its
    `lake` and `iceberg` catalogs in databases of its own beside the session's, with the same sample
    data as the local engine."""
    try:
        installation = ensure_installed(log=lambda line: print(f"[trino] {line}", flush=True))
    except InstallError as error:
        pytest.fail(f"could not install the real Trino: {error}", pytrace=False)
    name = postgres_database["dbname"]
    server = TrinoServer(
        installation,
        tmp_path_factory.mktemp("trino-server"),
        POSTGRES,
        port=free_port(),
        lake_database=f"{name}_lake",
        iceberg_database=f"{name}_iceberg",
        sample_events=TEST_EVENTS,
        secure=trino_credentials.secure,
    )
    try:
        server.start()
    except TrinoServerError as error:
        pytest.fail(str(error), pytrace=False)
    print(
        f"[trino] Trino {installation.version} up in {server.startup_seconds:.1f}s at {server.url}",
        flush=True,
    )
    yield server
    server.stop()
    for database in (server.lake_database, server.iceberg_database):
        drop_database(POSTGRES, database)


@pytest.fixture(scope="session")
def trino_proxy(local_trino: LocalTrino) -> Iterator[FaultProxy]:
    """What the code location connects to: the fault proxy, in front of the local engine unless a
    test's `backend` points it at the real Trino."""
    with FaultProxy(local_trino.url) as proxy:
        yield proxy


@dataclass
class Backend:
    """A Trino behind the fault proxy: `host`/`port`/`catalog` reach the server itself (assertions),
    `inject` adds a fault in front of it, `statements` lists what clients sent through the proxy."""

    name: str
    server: LocalTrino | TrinoServer
    proxy: FaultProxy
    catalog: str = "lake"
    first_statement: int = 0  # where this test's part of the session-wide proxy log begins

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def inject(self, fault: Fault) -> Fault:
        return self.proxy.inject(fault)

    def statements(self, source: str | None = None) -> list[ProxiedStatement]:
        """The statements clients sent through the proxy during this test."""
        return [
            s
            for s in self.proxy.statements()[self.first_statement :]
            if source is None or s.source == source
        ]

    def running_queries(self, pattern: str) -> list[RunningQuery]:
        """The server's queries whose text matches `pattern` and that have not ended: the local
        engine's own list, or Trino's `system.runtime.queries`."""
        if isinstance(self.server, LocalTrino):
            return [
                RunningQuery(q.id, q.state.value)
                for q in self.server.engine.queries()
                if re.search(pattern, q.sql) and not q.state.done
            ]
        rows = self.server.execute(
            "SELECT query_id, state, query FROM system.runtime.queries "
            "WHERE state NOT IN ('FINISHED', 'FAILED')"
        )
        return [
            RunningQuery(query_id, state)
            for query_id, state, text in rows
            if re.search(pattern, text.replace("''", "'"))
        ]


@dataclass(frozen=True)
class RunningQuery:
    query_id: str
    state: str


BACKENDS = ["local", "trino"]


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, trino_proxy: FaultProxy, local_trino: LocalTrino
) -> Iterator[Backend]:
    """Each test that takes it runs once on the local engine and once on the real Trino, through one
    code path: the proxy's upstream is switched for the test."""
    server = local_trino if request.param == "local" else request.getfixturevalue("real_trino")
    trino_proxy.upstream_url = server.url
    try:
        yield Backend(
            request.param, server, trino_proxy, first_statement=len(trino_proxy.statements())
        )
    finally:
        trino_proxy.faults.clear()
        trino_proxy.upstream_url = local_trino.url


@pytest.fixture(autouse=True)
def _no_leftover_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "local_trino" in request.fixturenames:
        request.getfixturevalue("local_trino").engine.faults.clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(
    condition: Callable[[], object], timeout: float, interval: float = 0.02
) -> float | None:
    """Seconds until `condition()` held, or None if it did not within `timeout` (for a caller that
    has more to say, or to do, than fail the test)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
    return time.monotonic() - start


def wait_until(
    condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> float:
    """Seconds until `condition()` held; fails the test if it never does within `timeout`."""
    waited = wait_for(condition, timeout, interval)
    if waited is None:
        pytest.fail(f"condition not met within {timeout}s")
    return waited
