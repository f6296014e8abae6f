"""`report-pipeline local-trino` serves the engine in its own process until told to stop."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import requests
import trino

from report_pipeline_tests.conftest import free_port, wait_for


@pytest.fixture
def serve(tmp_path):
    """Start `report-pipeline local-trino` with extra flags; (port, process) once it answers."""
    processes = []

    def start(*flags: str):
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "report_pipeline.cli",
                "local-trino",
                "--port",
                str(port),
                "--sample-rows",
                "2000",
                "--data",
                str(tmp_path / f"lake-{port}.duckdb"),
                *flags,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)

        def answers() -> bool:
            try:
                requests.get(f"http://127.0.0.1:{port}/v1/info", timeout=1)
            except requests.ConnectionError:
                return process.poll() is not None  # (it exited: no use waiting longer)
            return True

        if wait_for(answers, timeout=30, interval=0.1) is None or process.poll() is not None:
            process.kill()
            output, _ = process.communicate()
            pytest.fail(f"local-trino did not start: {output}")
        return port, process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def served_engine(serve):
    return serve()


def test_serves_the_sample_data_to_the_client(served_engine) -> None:
    port, _ = served_engine
    with trino.dbapi.connect(
        host="127.0.0.1", port=port, user="cli", catalog="lake", schema="analytics"
    ) as c:
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
    with (
        LocalTrino(data=path, sample_events=500) as engine,
        trino.dbapi.connect(host=engine.host, port=engine.port, user="t", catalog="lake") as c,
    ):
        c.cursor().execute("CREATE TABLE lake.reports.kept AS SELECT 1 AS x")
    with (
        LocalTrino(data=path, sample_events=500) as engine,
        trino.dbapi.connect(host=engine.host, port=engine.port, user="t", catalog="lake") as c,
    ):
        cursor = c.cursor()
        cursor.execute("SELECT x FROM lake.reports.kept")
        assert cursor.fetchall() == [[1]]


def test_rejects_a_negative_sample_size() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "local-trino", "--sample-rows", "-1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "must be >= 0" in result.stderr


def test_fault_api_is_off_without_the_flag(served_engine) -> None:
    port, _ = served_engine
    for method in ("GET", "POST", "DELETE"):
        body = {"pattern": "cli_fault", "action": "error"} if method == "POST" else None
        response = requests.request(
            method, f"http://127.0.0.1:{port}/v1/local/faults", json=body, timeout=10
        )
        assert response.status_code == 404, method
        assert response.json()["error"]["errorName"] == "NOT_FOUND"


def test_enable_fault_injection_flag_serves_the_fault_api(serve) -> None:
    port, _ = serve("--enable-fault-injection")
    created = requests.post(
        f"http://127.0.0.1:{port}/v1/local/faults",
        timeout=10,
        json={"pattern": "cli_fault", "action": "error", "error_name": "PERMISSION_DENIED"},
    )
    assert created.status_code == 201
    with (
        trino.dbapi.connect(
            host="127.0.0.1", port=port, user="cli", catalog="lake", schema="analytics"
        ) as c,
        pytest.raises(trino.exceptions.TrinoUserError) as raised,
    ):
        c.cursor().execute("SELECT 'cli_fault'")
    assert raised.value.error_name == "PERMISSION_DENIED"


def test_catalog_flag_repeats_and_serves_a_memory_catalog_beside_the_lake(serve, tmp_path) -> None:
    port, _ = serve(
        "--catalog",
        "lake",
        "--catalog",
        "memory",
        "--catalog",
        f"archive={tmp_path / 'archive.duckdb'}",
    )
    with trino.dbapi.connect(host="127.0.0.1", port=port, user="cli") as connection:
        cursor = connection.cursor()
        cursor.execute("SHOW CATALOGS")
        assert [row[0] for row in cursor.fetchall()] == ["archive", "lake", "memory", "system"]
        cursor.execute(
            "CREATE TABLE memory.default.picked AS SELECT id FROM lake.analytics.users WHERE id < 3"
        )
        cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FROM memory.default.picked p "
            "JOIN lake.analytics.users u ON p.id = u.id"
        )
        assert cursor.fetchall() == [[3]]
    assert (tmp_path / "archive.duckdb").exists()


def test_catalog_flag_refuses_a_reserved_name_before_starting(tmp_path) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "local-trino", "--catalog", "system"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert "catalog name 'system' is reserved" in finished.stderr
