"""Fixtures of the local engine's HTTP tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from report_pipeline.local_trino import LocalTrino
from report_pipeline.local_trino.server import LocalTrinoServer

# The read timeout of `short_timeout_server`: long enough for any well-behaved request, short to
# wait out.
SHORT_TIMEOUT = 1.0


@pytest.fixture
def short_timeout_server(local_trino: LocalTrino) -> Iterator[LocalTrinoServer]:
    """A second HTTP front on the session's engine, closing connections silent for SHORT_TIMEOUT
    seconds."""
    server = LocalTrinoServer(local_trino.engine, read_timeout=SHORT_TIMEOUT).start()
    yield server
    server.stop()
