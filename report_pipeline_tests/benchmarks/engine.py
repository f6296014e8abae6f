"""B6: the local engine against DuckDB directly, on the same generated data.

A CTAS over all events plus the daily report's aggregation, timed end to end through the `trino`
client (HTTP, translation, JSON) and as the same translated SQL on a plain DuckDB connection,
alternating runs so both see the same machine state. Then a 1M-row fetch through the client.

B6c: the same CTAS + aggregation on the local engine and on a real Trino 476 (its `lake` catalog on
PostgreSQL and its `iceberg` catalog on local files), the same generated rows everywhere.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import sqlglot
import trino

from report_pipeline.local_trino import LocalTrino
from report_pipeline.local_trino.catalogs import CatalogSpec, open_database
from report_pipeline.local_trino.sample_data import load_sample_data
from report_pipeline.postgres import PostgresSettings, drop_database
from report_pipeline.trino_server import TrinoServer, ensure_installed

CTAS = """CREATE TABLE scratch.bench_summary AS
SELECT user_id, count(*) AS event_count, count_if(event_type = 'purchase') AS purchases
FROM analytics.events
WHERE event_date BETWEEN DATE '2026-01-01' AND DATE '2026-03-31'
GROUP BY user_id HAVING count(*) > 1"""
AGGREGATE = """SELECT u.country, avg(s.event_count) AS avg_events, sum(s.purchases) AS purchases
FROM analytics.users u JOIN scratch.bench_summary s ON u.id = s.user_id
GROUP BY u.country ORDER BY avg_events DESC"""
DROP = "DROP TABLE IF EXISTS scratch.bench_summary"


def real_trino(events: int, repeats: int) -> tuple[list[list[str]], dict]:
    """B6c: local engine vs real Trino, CTAS + aggregation over `events` sample events."""
    import secrets
    import tempfile
    from pathlib import Path

    from report_pipeline_tests.conftest import free_port

    postgres = PostgresSettings.from_env()
    prefix = f"report_pipeline_bench_{secrets.token_hex(4)}"
    print(f"B6c: starting a real Trino with {events:,} sample events ...", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="report-pipeline-bench-trino-") as work,
        LocalTrino(sample_events=events) as engine,
        TrinoServer(
            ensure_installed(),
            Path(work),
            postgres,
            port=free_port(),
            lake_database=f"{prefix}_lake",
            iceberg_database=f"{prefix}_iceberg",
            sample_events=events,
        ) as server,
    ):
        targets = {
            "local engine": (engine.host, engine.port, engine.catalog),
            "real Trino, lake (PostgreSQL)": (server.host, server.port, "lake"),
            "real Trino, iceberg": (server.host, server.port, "iceberg"),
        }
        cursors = {
            name: trino.dbapi.connect(
                host=host,
                port=port,
                user="bench",
                catalog=catalog,
                schema="analytics",
                request_timeout=600,
            ).cursor()
            for name, (host, port, catalog) in targets.items()
        }
        times: dict[str, list[float]] = {name: [] for name in targets}
        for cursor in cursors.values():
            _through_engine(cursor)  # warm-up
        for _ in range(repeats):
            for name, cursor in cursors.items():
                times[name].append(_through_engine(cursor))
    for database in (f"{prefix}_lake", f"{prefix}_iceberg"):
        drop_database(postgres, database)
    medians = {name: statistics.median(values) for name, values in times.items()}
    local = medians["local engine"]
    rows = [
        [
            f"B6c CTAS + aggregation, {events:,} events, {name}",
            f"{seconds:.3f} s",
            f"{local:.3f} s local engine",
            f"{seconds / local:.2f}x",
            "",
            "(figure)",
            "",
        ]
        for name, seconds in medians.items()
        if name != "local engine"
    ]
    return rows, {"events": events, "median_s": medians, "all_runs": times}


def _through_engine(cursor: trino.dbapi.Cursor) -> float:
    started = time.perf_counter()
    for sql in (CTAS, AGGREGATE):
        cursor.execute(sql)
        cursor.fetchall()
    elapsed = time.perf_counter() - started
    cursor.execute(DROP)
    cursor.fetchall()
    return elapsed


def _direct(connection, statements: list[str]) -> float:
    started = time.perf_counter()
    connection.execute(statements[0])
    connection.execute(statements[1]).fetchall()
    elapsed = time.perf_counter() - started
    connection.execute(statements[2])
    return elapsed


def main(events: int, repeats: int, fetch_rows: int) -> tuple[list[list[str]], dict]:
    print(f"generating {events:,} sample events twice (engine and direct DuckDB) ...", flush=True)
    direct = open_database([CatalogSpec("lake")])  # integer division on, as the engine's
    load_sample_data(direct, "lake", events)
    direct.execute("USE lake.analytics")
    translated = [
        sqlglot.transpile(s, read="trino", write="duckdb")[0] for s in (CTAS, AGGREGATE, DROP)
    ]

    with LocalTrino(sample_events=events) as engine:
        connection = trino.dbapi.connect(
            host=engine.host,
            port=engine.port,
            user="bench",
            catalog=engine.catalog,
            schema="analytics",
        )
        cursor = connection.cursor()
        _through_engine(cursor)  # warm-up: caches, first HTTP connection
        _direct(direct, translated)
        engine_times, direct_times = [], []
        for _ in range(repeats):
            engine_times.append(_through_engine(cursor))
            direct_times.append(_direct(direct, translated))

        fetch_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            cursor.execute(
                f"SELECT event_id, user_id, event_type, event_date FROM analytics.events "
                f"LIMIT {fetch_rows}"
            )
            fetched = len(cursor.fetchall())
            fetch_times.append(time.perf_counter() - started)
        direct_fetch = []
        for _ in range(repeats):
            started = time.perf_counter()
            direct.execute(
                f"SELECT event_id, user_id, event_type, event_date FROM analytics.events "
                f"LIMIT {fetch_rows}"
            ).fetchall()
            direct_fetch.append(time.perf_counter() - started)
        connection.close()

    engine_s, direct_s = statistics.median(engine_times), statistics.median(direct_times)
    fetch_s, direct_fetch_s = statistics.median(fetch_times), statistics.median(direct_fetch)
    results: dict[str, Any] = {  # the benchmark's JSON record
        "events": events,
        "repeats": repeats,
        "ctas_aggregate_engine_s": engine_s,
        "ctas_aggregate_duckdb_s": direct_s,
        "ctas_aggregate_ratio": engine_s / direct_s,
        "ctas_aggregate_goal_ratio": 1.3,
        "fetch_rows": fetched,
        "fetch_engine_rows_per_s": fetched / fetch_s,
        "fetch_duckdb_rows_per_s": fetched / direct_fetch_s,
    }
    rows = [
        [
            "B6a CTAS + aggregation, 10M events"
            if events == 10_000_000
            else f"B6a CTAS + aggregation, {events:,} events",
            f"{engine_s:.3f} s",
            f"{direct_s:.3f} s DuckDB direct",
            f"{engine_s / direct_s:.2f}x",
            "",
            "<= 1.30x",
            "met" if engine_s / direct_s <= 1.3 else "NOT MET",
        ],
        [
            f"B6b fetch {fetched:,} rows",
            f"{fetched / fetch_s:,.0f} rows/s",
            f"{fetched / direct_fetch_s:,.0f} rows/s DuckDB direct",
            f"{fetch_s / direct_fetch_s:.1f}x",
            "",
            "(figure)",
            "",
        ],
    ]
    results["all_runs"] = {"engine_s": engine_times, "duckdb_s": direct_times}
    return rows, results
