"""Shared fixtures: the local Trino-compatible engine on a free port, and clients of it."""

from __future__ import annotations

import threading
import time
from typing import Callable, Iterator

import pytest
import trino

from report_pipeline.local_trino import LocalTrino

# Small enough to generate in a blink, large enough for multi-page results and real aggregates.
TEST_EVENTS = 20_000


@pytest.fixture(scope="session")
def local_trino() -> Iterator[LocalTrino]:
    """One engine for the whole session; tests that change it clean up after themselves."""
    with LocalTrino(sample_events=TEST_EVENTS) as engine:
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
