"""`report-pipeline local-trino` serves the engine in its own process until told to stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import trino


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_engine(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "report_pipeline.cli", "local-trino", "--port", str(port),
         "--sample-rows", "2000", "--data", str(tmp_path / "lake.duckdb")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/info", timeout=1)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"local-trino did not start: {process.stdout.read()}")
            time.sleep(0.1)
    yield port, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_serves_the_sample_data_to_the_client(served_engine) -> None:
    port, _ = served_engine
    with trino.dbapi.connect(host="127.0.0.1", port=port, user="cli", catalog="lake", schema="analytics") as c:
        cursor = c.cursor()
        cursor.execute("SELECT count(*) FROM events")
        assert cursor.fetchall() == [[2000]]


def test_stops_cleanly_on_sigterm(served_engine) -> None:
    _, process = served_engine
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert "local engine stopped" in process.stdout.read()


def test_data_file_keeps_tables_across_restarts(tmp_path) -> None:
    from report_pipeline.local_trino import LocalTrino

    path = str(tmp_path / "kept.duckdb")
    with LocalTrino(data=path, sample_events=500) as engine:
        with trino.dbapi.connect(host=engine.host, port=engine.port, user="t", catalog="lake") as c:
            c.cursor().execute("CREATE TABLE lake.reports.kept AS SELECT 1 AS x")
    with LocalTrino(data=path, sample_events=500) as engine:
        with trino.dbapi.connect(host=engine.host, port=engine.port, user="t", catalog="lake") as c:
            cursor = c.cursor()
            cursor.execute("SELECT x FROM lake.reports.kept")
            assert cursor.fetchall() == [[1]]


def test_rejects_a_negative_sample_size() -> None:
    result = subprocess.run([sys.executable, "-m", "report_pipeline.cli", "local-trino", "--sample-rows", "-1"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "must be >= 0" in result.stderr
