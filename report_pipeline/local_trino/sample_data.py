"""A deterministic sample warehouse for the demo, the tests and the benchmarks.

The same arguments always give the same rows (arithmetic on the row number, no random state), so a
test can compute an expected report independently. Activity is skewed: a few users produce many
events, most produce few, as in real product analytics.
"""

from __future__ import annotations

import datetime as dt

import duckdb

DEFAULT_EVENTS = 50_000
DEFAULT_START = dt.date(2026, 1, 1)
DEFAULT_DAYS = 90
SOURCE_SCHEMA = "analytics"
WAREHOUSE_SCHEMAS = (SOURCE_SCHEMA, "scratch", "reports")
COUNTRIES = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "CA", "AU", "ES", "IT", "NL"]
EVENT_TYPES = ["page_view", "click", "search", "add_to_cart", "purchase"]
PLANS = ["free", "pro", "team"]


def users_for(events: int) -> int:
    return max(100, events // 50)


def load_sample_data(
    connection: duckdb.DuckDBPyConnection,
    catalog: str,
    events: int = DEFAULT_EVENTS,
    start: dt.date = DEFAULT_START,
    days: int = DEFAULT_DAYS,
) -> bool:
    """Create the warehouse schemas and, unless they exist, `users` and `events`. True if loaded."""
    if events < 0 or days < 1:
        raise ValueError("events must be >= 0 and days >= 1")
    for schema in WAREHOUSE_SCHEMAS:
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{catalog}"."{schema}"')
    row = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? "
        "AND table_name IN ('users', 'events')",
        [catalog, SOURCE_SCHEMA],
    ).fetchone()
    assert row is not None  # count(*) answers exactly one row
    if row[0] == 2 or events == 0:
        return False
    users = users_for(events)
    prefix = f'"{catalog}"."{SOURCE_SCHEMA}"'
    # Knuth's multiplicative hash spreads row numbers over 32 bits; the fields are slices of it.
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE {prefix}.users AS
        SELECT id::BIGINT AS id,
               ($countries)[1 + (h % {len(COUNTRIES)})::INTEGER] AS country,
               ($start::DATE - ((h >> 8) % 720)::INTEGER) AS signup_date,
               ($plans)[1 + ((h >> 4) % {len(PLANS)})::INTEGER] AS plan
        FROM (SELECT range AS id, (range * 2654435761) % 4294967296 AS h FROM range({users}))
        ORDER BY id
    """,
        {"countries": COUNTRIES, "plans": PLANS, "start": start},
    )
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE {prefix}.events AS
        SELECT i::BIGINT AS event_id,
               -- squaring a uniform fraction skews activity towards low user ids
               floor(((h % 10007) / 10007.0) ** 2 * {users})::BIGINT AS user_id,
               ($event_types)[1 + ((h >> 3) % {len(EVENT_TYPES)})::INTEGER] AS event_type,
               ($start::DATE + ((h >> 11) % {days})::INTEGER) AS event_date,
               ($start::DATE + ((h >> 11) % {days})::INTEGER)::TIMESTAMP
                   + to_seconds(((h >> 5) % 86400)::BIGINT) AS event_time,
               ((h >> 7) % 60000)::INTEGER AS duration_ms
        FROM (SELECT range AS i, (range * 2654435761 + 97) % 4294967296 AS h FROM range({events}))
        ORDER BY event_date, event_id
    """,
        {"event_types": EVENT_TYPES, "start": start},
    )
    return True
