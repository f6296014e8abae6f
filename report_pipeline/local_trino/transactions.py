"""Explicit transactions, accepted as Trino accepts them on connectors that only autocommit.

The local catalogs, like Trino's PostgreSQL and memory connectors, write only in autocommit mode:
inside `START TRANSACTION` reads work, a write fails AUTOCOMMIT_WRITE_CONFLICT, and any failure
aborts the transaction until the client ends it with COMMIT or ROLLBACK. The transaction id travels
in the `X-Trino-Transaction-Id` header (`NONE` when the client can start one).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from report_pipeline.local_trino.errors import TrinoError

NO_TRANSACTION = "NONE"
IDLE_TIMEOUT_SECONDS = 300.0  # Trino's transaction.idle-timeout


@dataclass
class Transaction:
    id: str
    read_only: bool
    isolation_level: str
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.time)
    aborted: bool = False


class Transactions:
    """The open transactions of one engine; thread-safe."""

    def __init__(self) -> None:
        self._open: dict[str, Transaction] = {}
        self._lock = threading.Lock()

    def begin(self, read_only: bool, isolation_level: str) -> Transaction:
        transaction = Transaction(str(uuid.uuid4()), read_only, isolation_level)
        with self._lock:
            self._open[transaction.id] = transaction
        return transaction

    def get(self, transaction_id: str) -> Transaction:
        with self._lock:
            transaction = self._open.get(transaction_id)
        if transaction is None:
            raise TrinoError(
                "UNKNOWN_TRANSACTION",
                f"Unknown transaction ID: {transaction_id}. Possibly expired? "
                "Commands ignored until end of transaction block",
            )
        transaction.last_used = time.time()
        return transaction

    def end(self, transaction_id: str) -> None:
        with self._lock:
            self._open.pop(transaction_id, None)

    def list(self) -> list[Transaction]:
        with self._lock:
            return list(self._open.values())

    def expire_idle(self, now: float) -> None:
        with self._lock:
            for transaction_id in [
                t.id for t in self._open.values() if now - t.last_used > IDLE_TIMEOUT_SECONDS
            ]:
                del self._open[transaction_id]


def parse_header(value: str | None) -> str | None:
    """The transaction id a request names: None (autocommit, the client cannot start one),
    `NONE` (autocommit, it can), or a transaction's id. ValueError for text that is no id."""
    if value is None or value.strip().upper() == NO_TRANSACTION:
        return value.strip().upper() if value else None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError(f"Invalid UUID string: {value.strip()}") from None
