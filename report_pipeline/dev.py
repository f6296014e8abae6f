"""`make dev`: the Dagster UI and daemon over the local engine, with run storage and ledger in
PostgreSQL.

Uses the PostgreSQL server from PGHOST/PGPORT/PGUSER/PGPASSWORD (defaults in
report_pipeline/settings.py), creating the database if needed, for both Dagster's storage (through
a private PgBouncer, as in the compose stack: report_pipeline/pgbouncer.py) and the saga ledger,
and keeps the Dagster instance in `.dagster-home/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from report_pipeline import settings
from report_pipeline.local_trino import LocalTrino
from report_pipeline.pgbouncer import PgBouncer
from report_pipeline.postgres import PostgresSettings, ensure_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_dev(ui_port: int, trino_port: int, database: str, pgbouncer_port: int) -> int:
    pg = PostgresSettings.from_env()
    ensure_database(pg, database)
    home = PROJECT_ROOT / ".dagster-home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    with LocalTrino(port=trino_port) as engine, PgBouncer(pg, pgbouncer_port) as bouncer:
        env = {
            **os.environ,
            settings.DAGSTER_HOME.name: str(home),
            **settings.postgres_environment(pg, database, dagster_server=bouncer.settings),
            **settings.trino_environment(
                engine.host, engine.port, "report_pipeline", engine.catalog
            ),
        }
        print(
            f"local Trino-compatible engine: {engine.url}\n"
            f"Dagster's storage through PgBouncer on {bouncer.host}:{bouncer.port}\n"
            f"Dagster UI: http://127.0.0.1:{ui_port}",
            flush=True,
        )
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster",
                "dev",
                "-h",
                "127.0.0.1",
                "-p",
                str(ui_port),
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
            ],
            env=env,
            cwd=PROJECT_ROOT,
        )
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            return process.wait()
