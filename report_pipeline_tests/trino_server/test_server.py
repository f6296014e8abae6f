"""The real Trino the project installs: cached install, catalogs, the sample data, the CLI's
lifecycle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import trino

from report_pipeline.trino_server import TRINO_VERSION, ensure_installed
from report_pipeline_tests.conftest import POSTGRES, free_port, wait_until

SAMPLE_QUERIES = {
    "users": "SELECT id, country, signup_date, plan FROM analytics.users ORDER BY id",
    "events": "SELECT event_id, user_id, event_type, event_date, event_time, duration_ms "
    "FROM analytics.events ORDER BY event_id",
}


def rows(host: str, port: int, catalog: str, sql: str) -> list[list]:
    with trino.dbapi.connect(
        host=host, port=port, user="assertions", catalog=catalog, schema="analytics"
    ) as c:
        cursor = c.cursor()
        cursor.execute(sql)
        return cursor.fetchall()


def test_a_second_install_downloads_nothing(real_trino) -> None:
    said: list[str] = []
    started = time.monotonic()
    installation = ensure_installed(log=said.append)
    assert said == []
    assert time.monotonic() - started < 2
    assert installation.server_home == real_trino.installation.server_home


def test_server_is_the_pinned_version_and_answers_select_1(real_trino) -> None:
    assert rows(real_trino.host, real_trino.port, "lake", "SELECT 1") == [[1]]
    info = requests.get(f"{real_trino.url}/v1/info", timeout=5).json()
    assert info["nodeVersion"]["version"] == TRINO_VERSION and info["starting"] is False


def test_server_has_the_lake_iceberg_and_memory_catalogs(real_trino) -> None:
    catalogs = {r[0] for r in rows(real_trino.host, real_trino.port, "lake", "SHOW CATALOGS")}
    assert {"lake", "iceberg", "memory"} <= catalogs


@pytest.mark.parametrize("catalog", ["lake", "iceberg"])
@pytest.mark.parametrize("table", sorted(SAMPLE_QUERIES))
def test_sample_data_is_row_for_row_the_local_engines(
    real_trino, local_trino, catalog, table
) -> None:
    expected = rows(local_trino.host, local_trino.port, local_trino.catalog, SAMPLE_QUERIES[table])
    assert (
        expected
        and rows(real_trino.host, real_trino.port, catalog, SAMPLE_QUERIES[table]) == expected
    )


def test_heap_fits_two_cores_and_24_gib(real_trino) -> None:
    status = requests.get(f"{real_trino.url}/v1/status", timeout=5).json()
    assert status["processors"] >= 1 and status["heapAvailable"] <= 3 * 1024**3


def test_cli_serves_until_sigterm_then_stops_the_server(real_trino, tmp_path) -> None:
    port = free_port()
    prefix = f"cli_{os.getpid()}_{port}"
    command = [
        sys.executable,
        "-m",
        "report_pipeline.cli",
        "trino-server",
        "--port",
        str(port),
        "--sample-rows",
        "1000",
        "--data-dir",
        str(tmp_path / "data"),
        "--database-prefix",
        prefix,
    ]
    env = {
        **os.environ,
        "PGHOST": POSTGRES.host,
        "PGPORT": str(POSTGRES.port),
        "PGUSER": POSTGRES.user,
        "PGPASSWORD": POSTGRES.password,
    }
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None  # stdout=PIPE
    try:
        lines: list[str] = []
        while not any("listening on" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"trino-server ended before serving:\n{''.join(lines)}"
            lines.append(line)
        assert f"http://127.0.0.1:{port}" in lines[-1]
        assert rows("127.0.0.1", port, "lake", "SELECT count(*) FROM events") == [[1000]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert "Trino stopped" in process.stdout.read()
        wait_until(lambda: not _answers(port), timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
        for suffix in ("lake", "iceberg"):
            from report_pipeline.postgres import drop_database

            drop_database(POSTGRES, f"{prefix}_{suffix}")


def _answers(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/v1/info", timeout=1)
        return True
    except requests.RequestException:
        return False
