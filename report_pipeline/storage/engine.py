"""Connections to the ledger database, bounded in time, and one line saying why one failed.

A ledger that does not answer must not hang its callers (`report-pipeline status`, each scrape of
`/metrics`, a step's bookkeeping, a sensor's tick): libpq gives up connecting after
CONNECT_TIMEOUT_SECONDS, and the server cancels any statement running longer than
STATEMENT_TIMEOUT_SECONDS. The stores' statements take milliseconds, so either limit means something
is wrong; waits that are the point (a saga's advisory lock, the migration lock and the migration
itself) lift the statement timeout for their own transaction. A URL that sets `connect_timeout` or
`options=-c statement_timeout=...` itself wins over these.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 30


def create_engine(url: str) -> sa.Engine:
    """The engine every store of this database shares (PostgreSQL; SQLite only for the demo)."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    else:
        options["connect_args"] = _postgres_connect_args(sa.make_url(url))
    return sa.create_engine(url, **options)


def _postgres_connect_args(url: sa.URL) -> dict[str, Any]:
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in (
        "psycopg2",
        "psycopg",
    ):
        return {}
    args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    own = url.query.get("options", ())
    # the URL's own options come last: PostgreSQL applies the last setting of a name
    args["options"] = " ".join(
        [
            f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS}s",
            *([own] if isinstance(own, str) else own),
        ]
    )
    return args


def describe_failure(url: sa.URL, error: BaseException) -> str:
    """One line saying the ledger could not be read and why, never the URL's password."""
    reason = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(reason).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    where = (
        url.database
        if url.get_backend_name() == "sqlite"
        else f"{url.host}:{url.port or 5432}/{url.database}"
    )
    return f"cannot read the saga ledger at {where}: {text}"
