"""B8: one `/metrics` scrape against a big ledger (10^6 step attempts, 10^5 sagas by default).

The ledger is generated in a fresh PostgreSQL database with INSERT ... SELECT generate_series (a
few seconds), shaped like production's: five reports of four steps, ten attempts per saga, one saga
in ten failed (compensated or needing a person) with its alert, a few sagas still live, and failed
attempts named by Trino's codes and by 5,000 made-up names; none of it folded into the metric totals
yet, as just after the upgrade to ledger version 4. Timed: the first scrape (it sums every row, and
folds for a second), folding the rest of the history (what the next scrapes do, a second each), and,
after the VACUUM ANALYZE autovacuum runs after such a batch, the median of SCRAPES scrapes.
"""

from __future__ import annotations

import secrets
import statistics
import time

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest

from report_pipeline.observability.metrics import LedgerCollector, fold
from report_pipeline.postgres import PostgresSettings, drop_database, ensure_database
from report_pipeline.saga.ledger import SqlLedger

REPORTS = (
    "daily_country_report",
    "weekly_engagement_report",
    "monthly_revenue",
    "hourly_usage",
    "churn",
)
ATTEMPTS_PER_SAGA = 10
LIVE_SAGAS = 25  # the newest sagas are still running (and compensating)
GOAL_SECONDS = 0.1
SCRAPES = 11

# one saga in ten fails: 7 % compensated, 3 % needing a person; the newest LIVE_SAGAS are live
_SAGAS = """
INSERT INTO sagas (saga_id, saga_name, parameters, trigger, partition_key, state, generation,
                   run_id, failure_kind, failed_step, error, created_at, updated_at)
SELECT 'saga-' || i, (ARRAY{reports})[1 + i % 5], '{{"day": "2026-01-01"}}', 'schedule:daily',
       'p' || (i % 365), state, 1, 'run-' || i,
       CASE WHEN state IN ('COMPENSATED', 'FAILED_NEEDS_MANUAL') THEN 'step_failed' END,
       CASE WHEN state IN ('COMPENSATED', 'FAILED_NEEDS_MANUAL') THEN 'step_3' END,
       CASE WHEN state IN ('COMPENSATED', 'FAILED_NEEDS_MANUAL') THEN 'TABLE_NOT_FOUND: gone' END,
       created, created + interval '1 second' * (60 + i % 3600)
FROM (SELECT i, now() - interval '30 seconds' * ({sagas} - i) AS created,
             CASE WHEN i >= {sagas} - 5 THEN 'COMPENSATING'
                  WHEN i >= {sagas} - {live} THEN 'RUNNING'
                  WHEN i % 100 < 90 THEN 'SUCCEEDED'
                  WHEN i % 100 < 97 THEN 'COMPENSATED'
                  ELSE 'FAILED_NEEDS_MANUAL' END AS state
      FROM generate_series(0, {sagas} - 1) AS i) AS s
"""
# attempt j of saga i: actions then two undos; one in seven failed, by a known or a made-up name;
# a live saga's last attempt is still running
_ATTEMPTS = """
INSERT INTO saga_step_attempts (saga_id, step, kind, status, run_id, generation, attempt,
                                started_at, ended_at, query_id, rows, bytes, error, error_name,
                                queued_seconds)
SELECT 'saga-' || i, 'step_' || (1 + j % 4),
       CASE WHEN j < {per_saga} - 2 THEN 'action' ELSE 'compensation' END,
       status, 'run-' || i, 1, 1 + j / 4, started,
       CASE WHEN status <> 'RUNNING'
            THEN started + interval '1 millisecond' * (100 + (i * 7919 + j * 104729) % 900000) END,
       '20260101_' || i || '_' || j, (i * j) % 100000, (i * j) % 100000 * 100,
       CASE WHEN status = 'FAILED' THEN 'failed' END,
       CASE WHEN status = 'FAILED' THEN
            CASE i % 4 WHEN 0 THEN 'EXCEEDED_TIME_LIMIT' WHEN 1 THEN 'HIVE_METASTORE_ERROR'
                       WHEN 2 THEN 'CONNECTION_LOST' ELSE 'MADE_UP_' || (i % 5000) END END,
       ((i * 31 + j) % 5000) / 1000.0
FROM (SELECT i, j,
             now() - interval '30 seconds' * ({sagas} - i) + interval '20 seconds' * j AS started,
             CASE WHEN i >= {sagas} - {live} AND j = {per_saga} - 1 THEN 'RUNNING'
                  WHEN (i * {per_saga} + j) % 7 = 0 THEN 'FAILED' ELSE 'SUCCEEDED' END AS status
      FROM generate_series(0, {attempts} - 1) AS k,
           LATERAL (SELECT k / {per_saga} AS i, k % {per_saga} AS j) AS ij)
     AS a
"""
# each saga starts RUNNING; an ended one moved on to its end state (a failed one through FAILED and
# COMPENSATING), a compensating one as far as COMPENSATING
_TRANSITIONS = """
INSERT INTO saga_transitions (saga_id, old_state, new_state, at, reason, run_id)
SELECT s.saga_id, path[n - 1], path[n], s.created_at + interval '1 second' * n, 'generated',
       s.run_id
FROM (SELECT saga_id, created_at, run_id,
             CASE state WHEN 'SUCCEEDED' THEN ARRAY[NULL, 'RUNNING', 'SUCCEEDED']
                        WHEN 'RUNNING' THEN ARRAY[NULL, 'RUNNING']
                        WHEN 'COMPENSATING' THEN ARRAY[NULL, 'RUNNING', 'FAILED', 'COMPENSATING']
                        ELSE ARRAY[NULL, 'RUNNING', 'FAILED', 'COMPENSATING', state] END AS path
      FROM sagas) AS s, generate_series(2, array_length(s.path, 1)) AS n
ORDER BY s.created_at, n
"""
_ALERTS = """
INSERT INTO saga_alerts (alert_key, saga_id, kind, payload, status, attempts, created_at,
                         delivered_at)
SELECT saga_id || ':1:' || state, saga_id, lower('saga_' || state), '{{}}', 'delivered', 1,
       updated_at, updated_at
FROM sagas WHERE state IN ('COMPENSATED', 'FAILED_NEEDS_MANUAL')
"""


def generate(ledger: SqlLedger, sagas: int, attempts: int) -> None:
    """Fill an empty, migrated ledger (PostgreSQL) with `sagas` sagas and `attempts` step
    attempts."""
    per_saga = attempts // sagas
    values = {
        "sagas": sagas,
        "attempts": attempts,
        "per_saga": per_saga,
        "live": LIVE_SAGAS,
        "reports": "[" + ", ".join(f"'{r}'" for r in REPORTS) + "]",
    }
    with ledger.engine.begin() as connection:
        connection.execute(sa.text("SET LOCAL statement_timeout = 0"))  # bulk loading takes seconds
        for statement in (_SAGAS, _ATTEMPTS, _TRANSITIONS, _ALERTS):
            connection.execute(sa.text(statement.format(**values)))
    vacuum(ledger)


def vacuum(ledger: SqlLedger) -> None:
    with ledger.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(
            sa.text("SET statement_timeout = 0")
        )
        for table in (
            "sagas",
            "saga_step_attempts",
            "saga_transitions",
            "saga_alerts",
            "saga_metric_totals",
        ):
            connection.execute(sa.text(f"VACUUM ANALYZE {table}"))


def scrape(registry: CollectorRegistry) -> float:
    """Seconds for one scrape, rendered as Prometheus reads it."""
    started = time.perf_counter()
    generate_latest(registry)
    return time.perf_counter() - started


def main(sagas: int, attempts: int) -> tuple[list[list[str]], dict]:
    postgres = PostgresSettings.from_env()
    database = f"report_pipeline_bench_{secrets.token_hex(4)}"
    print(
        f"B8: a /metrics scrape over {attempts:,} step attempts and {sagas:,} sagas ...", flush=True
    )
    ensure_database(postgres, database)
    ledger = SqlLedger(postgres.url(database))
    try:
        ledger.migrate()
        started = time.perf_counter()
        generate(ledger, sagas, attempts)
        generated = time.perf_counter() - started
        registry = CollectorRegistry(auto_describe=False)
        registry.register(LedgerCollector(ledger))
        first = scrape(registry)
        started = time.perf_counter()
        with ledger.engine.connect() as connection:
            while fold(connection):
                pass
        catch_up = time.perf_counter() - started
        vacuum(ledger)
        times = [scrape(registry) for _ in range(SCRAPES)]
        up = registry.get_sample_value("saga_ledger_up")
    finally:
        ledger.close()
        drop_database(postgres, database)
    median = statistics.median(times)
    print(
        f"B8: generated in {generated:.1f}s; first scrape {first:.2f}s, the rest of the history "
        f"folded in {catch_up:.1f}s, then a scrape takes {median * 1000:.0f} ms "
        f"(median of {SCRAPES})",
        flush=True,
    )
    row = [
        f"B8 /metrics scrape, {attempts:,} step attempts, {sagas:,} sagas",
        f"{median * 1000:.0f} ms",
        f"{first:.2f} s first scrape",
        "",
        f"history folded in {catch_up:.0f} s",
        f"<= {GOAL_SECONDS * 1000:.0f} ms",
        "met" if median <= GOAL_SECONDS and up == 1 else "NOT MET",
    ]
    return [row], {
        "sagas": sagas,
        "attempts": attempts,
        "generate_s": generated,
        "first_scrape_s": first,
        "catch_up_s": catch_up,
        "median_s": median,
        "all_runs": times,
    }
