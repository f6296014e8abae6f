"""Ledgers that cannot be reached (hung, down), and the ledger fixture on PostgreSQL and SQLite;
sagas in every state come from report_pipeline_tests.builders (`chain_saga_in`)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from report_pipeline_tests.conftest import free_port
from report_pipeline_tests.saga.conftest import ledger as ledger  # the fixture, for these tests

PASSWORD = "s3cret-ledger-pw"  # in the URLs of unreachable ledgers: no message may show it


def ledger_url(host_port: str) -> str:
    return f"postgresql+psycopg2://report_pipeline:{PASSWORD}@{host_port}/ledger"


@pytest.fixture
def hung_postgres() -> Iterator[str]:
    """host:port of a server that accepts connections and never says a word (a hung PostgreSQL)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # the listening socket was shut down: the test is over
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=5)
    for connection in held:
        connection.close()


@pytest.fixture
def down_postgres() -> str:
    """host:port where nothing listens (PostgreSQL down): connections are refused at once."""
    return f"127.0.0.1:{free_port()}"
