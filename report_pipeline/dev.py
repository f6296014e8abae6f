"""`make dev`: the Dagster UI and daemon over the local engine, with run storage and ledger in PostgreSQL.

Uses the PostgreSQL server from PGHOST/PGPORT/PGUSER/PGPASSWORD (default 127.0.0.1:5432, user
postgres), creating the database if needed, and keeps the Dagster instance in `.dagster-home/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psycopg2
from psycopg2 import sql

from report_pipeline.local_trino import LocalTrino

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def postgres_settings() -> dict[str, str]:
    return {"host": os.environ.get("PGHOST", "127.0.0.1"), "port": os.environ.get("PGPORT", "5432"),
            "user": os.environ.get("PGUSER", "postgres"), "password": os.environ.get("PGPASSWORD", "")}


def ensure_database(name: str) -> None:
    settings = postgres_settings()
    connection = psycopg2.connect(dbname="postgres", **settings)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    connection.close()


def run_dev(ui_port: int, trino_port: int, database: str) -> int:
    ensure_database(database)
    home = PROJECT_ROOT / ".dagster-home"
    home.mkdir(exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    pg = postgres_settings()
    auth = pg["user"] + (f":{pg['password']}" if pg["password"] else "")
    with LocalTrino(port=trino_port) as engine:
        env = {**os.environ, "DAGSTER_HOME": str(home),
               "DAGSTER_PG_HOST": pg["host"], "DAGSTER_PG_PORT": pg["port"], "DAGSTER_PG_USERNAME": pg["user"],
               "DAGSTER_PG_PASSWORD": pg["password"], "DAGSTER_PG_DB": database,
               "TRINO_HOST": engine.host, "TRINO_PORT": str(engine.port), "TRINO_USER": "report_pipeline",
               "TRINO_CATALOG": engine.catalog,
               "REPORT_PIPELINE_LEDGER_URL": f"postgresql+psycopg2://{auth}@{pg['host']}:{pg['port']}/{database}"}
        print(f"local Trino-compatible engine: {engine.url}\nDagster UI: http://127.0.0.1:{ui_port}", flush=True)
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(ui_port),
             "-w", str(PROJECT_ROOT / "workspace.yaml")], env=env, cwd=PROJECT_ROOT)
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            return process.wait()
