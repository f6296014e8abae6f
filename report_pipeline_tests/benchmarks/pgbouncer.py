"""What PgBouncer (report_pipeline/pgbouncer.py) in front of PostgreSQL saves:
`python -m report_pipeline_tests.benchmarks.pgbouncer`.

dagster-postgres opens a new PostgreSQL connection for every storage call (NullPool), so each event
a run writes pays a server backend's start-up and a SCRAM handshake. Through PgBouncer the client
still connects each time, but to PgBouncer, which hands it an idle server connection; it still
authenticates with SCRAM, as to the server, and that key derivation (client's and PgBouncer's) is
most of what such a connection costs. The measurement alternates direct and via-PgBouncer on one
fresh database for
- `connect`: connect, INSERT one row, commit, close (what NullPool does per event), and
- `dagster`: `execute_job` of a 3-op job (in-process executor) on an instance made from the
  repository's dagster.yaml, DAGSTER_PG_* naming the server directly or PgBouncer,
and prints the medians side by side (ratio: PgBouncer's over direct's, below 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa
from psycopg2 import sql
from tabulate import tabulate

from report_pipeline.pgbouncer import TIMEOUT_SECONDS, PgBouncer, pgbouncer_binary
from report_pipeline.postgres import PostgresSettings
from report_pipeline_tests.conftest import POSTGRES, free_port

ROOT = Path(__file__).resolve().parents[2]
MODULE = "report_pipeline_tests.benchmarks.pgbouncer"  # __name__ is __main__ under `python -m`


def pgbouncer_version() -> str:
    """E.g. "PgBouncer 1.18.0"."""
    completed = subprocess.run(
        [pgbouncer_binary(), "--version"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=True,
    )
    return completed.stdout.splitlines()[0].strip()


# --- the measurement ----------------------------------------------------------------------------
@dg.op
def extract() -> int:
    return 1


@dg.op
def transform(value: int) -> int:
    return value + 1


@dg.op
def load(value: int) -> int:
    return value * 2


@dg.job(executor_def=dg.in_process_executor)
def tiny_job() -> None:
    load(transform(extract()))


def tiny_job_target() -> dg.JobDefinition:
    """The reconstructable target for `execute_job`."""
    return tiny_job


QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # the events are still stored


@contextmanager
def fresh_database(server: PostgresSettings) -> Iterator[str]:
    name = f"report_pipeline_bench_pgbouncer_{secrets.token_hex(4)}"
    admin = server.connect()
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SET statement_timeout = '60s'")
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            # bounds every statement of every session, direct or pooled, at no cost per connection
            cursor.execute(
                sql.SQL("ALTER DATABASE {} SET statement_timeout = '60s'").format(
                    sql.Identifier(name)
                )
            )
        connection = server.connect(name)
        try:
            with connection, connection.cursor() as cursor:  # commits; closing is ours
                cursor.execute("CREATE TABLE events (id bigserial PRIMARY KEY, body text NOT NULL)")
        finally:
            connection.close()
        yield name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        admin.close()


def connect_cycle(target: PostgresSettings, database: str) -> float:
    """Seconds for connect, INSERT one row, commit, close."""
    start = time.perf_counter()
    connection = target.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO events (body) VALUES (%s)", ["event"])
        connection.commit()
    finally:
        connection.close()
    return time.perf_counter() - start


def alternate(
    sides: dict[str, Callable[[], float]], repeats: int, warm_up: int = 1
) -> dict[str, list[float]]:
    """Each side's `repeats` timings, interleaved, the first side first on even rounds only."""
    names = list(sides)
    for name in names * warm_up:
        sides[name]()
    timings: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(repeats):
        for name in names if round_number % 2 == 0 else names[::-1]:
            timings[name].append(sides[name]())
    return timings


@contextmanager
def dagster_instance(home: Path, target: PostgresSettings, database: str) -> Iterator[Any]:
    """An instance from `home`'s dagster.yaml with DAGSTER_PG_* naming `target` (the storage keeps
    its URL, so the environment is restored at once)."""
    saved = dict(os.environ)
    os.environ.update(
        {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": target.host,
            "DAGSTER_PG_PORT": str(target.port),
            "DAGSTER_PG_USERNAME": target.user,
            "DAGSTER_PG_PASSWORD": target.password,
            "DAGSTER_PG_DB": database,
        }
    )
    try:
        instance = dg.DagsterInstance.get()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with instance:
        yield instance


def dagster_run(instance: dg.DagsterInstance, opened: list[int]) -> tuple[float, int]:
    """Seconds for one run of the tiny job, and the PostgreSQL connections it opened."""
    job = dg.build_reconstructable_job(MODULE, tiny_job_target.__name__)
    before = opened[0]
    start = time.perf_counter()
    with dg.execute_job(job, instance=instance, run_config=QUIET) as result:
        seconds = time.perf_counter() - start
        if not result.success:
            raise RuntimeError(f"run {result.run_id} failed")
    return seconds, opened[0] - before


def main(cycles: int, repeats: int) -> list[list[Any]]:
    print(f"{pgbouncer_version()}, PostgreSQL at {POSTGRES.host}:{POSTGRES.port}", flush=True)
    rows: list[list[Any]] = []
    with fresh_database(POSTGRES) as database, PgBouncer(POSTGRES, free_port()) as bouncer:
        targets = {"direct": POSTGRES, "pgbouncer": bouncer.settings}
        print(f"connect: {cycles} cycles each, alternating ...", flush=True)
        cycle_times = alternate(
            {name: partial(connect_cycle, target, database) for name, target in targets.items()},
            cycles,
            warm_up=10,
        )
        rows.append(_row("connect, INSERT, commit, close", cycle_times, cycles, "ms", 1000))

        print(f"dagster: {repeats} runs of a 3-op job each, alternating ...", flush=True)
        home = Path(tempfile.mkdtemp(prefix="report-pipeline-bench-pgbouncer-"))
        opened = [0]  # every DBAPI connection SQLAlchemy opens in this process

        def count(*_: object) -> None:
            opened[0] += 1

        sa.event.listen(sa.Engine, "connect", count)
        try:
            shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
            with (
                dagster_instance(home, POSTGRES, database) as direct,
                dagster_instance(home, bouncer.settings, database) as pooled,
            ):
                connections: dict[str, list[int]] = {"direct": [], "pgbouncer": []}

                def timed(name: str, instance: dg.DagsterInstance) -> Callable[[], float]:
                    def run() -> float:
                        seconds, connected = dagster_run(instance, opened)
                        connections[name].append(connected)
                        return seconds

                    return run

                served = bouncer.queries_served(database)
                run_times = alternate(
                    {"direct": timed("direct", direct), "pgbouncer": timed("pgbouncer", pooled)},
                    repeats,
                )
                served = bouncer.queries_served(database) - served
        finally:
            sa.event.remove(sa.Engine, "connect", count)
            shutil.rmtree(home, ignore_errors=True)
        if served == 0:
            raise RuntimeError("no Dagster statement went through PgBouncer")
        per_run = " / ".join(f"{statistics.median(counts):g}" for counts in connections.values())
        rows.append(
            _row(
                "dagster execute_job, 3 ops",
                run_times,
                repeats,
                "s",
                1,
                f"connections opened per run: {per_run}",
            )
        )
    return rows


def _row(
    name: str,
    timings: dict[str, list[float]],
    count: int,
    unit: str,
    scale: float,
    detail: str = "",
) -> list[Any]:
    direct, pooled = (statistics.median(timings[side]) for side in ("direct", "pgbouncer"))
    digits = 2 if unit == "ms" else 3
    return [
        name,
        f"median of {count}",
        f"{direct * scale:.{digits}f} {unit}",
        f"{pooled * scale:.{digits}f} {unit}",
        f"{pooled / direct:.2f}",
        detail,
    ]


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=300, help="connect cycles per side")
    parser.add_argument("--repeats", type=int, default=5, help="Dagster runs per side")
    args = parser.parse_args()
    rows = main(args.cycles, args.repeats)
    print()
    print(
        tabulate(
            rows, headers=["workload", "", "direct", "pgbouncer", "ratio (pgbouncer/direct)", ""]
        )
    )


if __name__ == "__main__":
    run()
