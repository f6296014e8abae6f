"""A ledger that is down, hung, or not created yet: `status` and `/metrics` answer within the
connect timeout, in one line and without the URL's password, and an empty ledger is just empty."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from report_pipeline.observability.metrics import LedgerCollector
from report_pipeline.observability.status import (
    UNREACHABLE,
    describe_recent,
    describe_saga,
    show_status,
)
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.storage.engine import CONNECT_TIMEOUT_SECONDS
from report_pipeline_tests.conftest import free_port, wait_until
from report_pipeline_tests.observability.conftest import PASSWORD, ledger_url
from report_pipeline_tests.saga.conftest import isolated_schema_url

# connecting gives up after the connect timeout; a process start and a scrape come on top
GIVES_UP_WITHIN = CONNECT_TIMEOUT_SECONDS + 4


def scrape(ledger: SqlLedger) -> tuple[LedgerCollector, CollectorRegistry]:
    collector = LedgerCollector(ledger)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return collector, registry


def status_command(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REPORT_PIPELINE_LEDGER_URL": url},
    )


def assert_one_clear_line(stderr: str | None, reason: str) -> None:
    assert stderr is not None and len(stderr.strip().splitlines()) == 1, stderr
    assert "cannot read the saga ledger at 127.0.0.1:" in stderr and reason in stderr
    assert PASSWORD not in stderr and "Traceback" not in stderr


def test_a_scrape_of_a_hung_ledger_gives_up_within_the_connect_timeout_with_up_0(
    hung_postgres,
) -> None:
    # libpq's shortest timeout, to spare the test 3 s; the status test below waits out the default
    collector, registry = scrape(SqlLedger(ledger_url(hung_postgres) + "?connect_timeout=2"))
    started = time.monotonic()
    assert registry.get_sample_value("saga_ledger_up") == 0
    assert time.monotonic() - started < 2 + 4
    assert_one_clear_line(collector.failure, "timeout expired")


def test_a_scrape_of_a_down_ledger_gives_up_0_and_says_why_in_one_line(down_postgres) -> None:
    collector, registry = scrape(SqlLedger(ledger_url(down_postgres)))
    assert registry.get_sample_value("saga_ledger_up") == 0
    assert (
        registry.get_sample_value(
            "saga_executions_total", {"saga_name": "chain", "status": "succeeded"}
        )
        is None
    )
    assert_one_clear_line(collector.failure, "Connection refused")


def test_the_exporter_logs_a_down_ledger_once_and_keeps_answering(down_postgres) -> None:
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "report_pipeline.cli", "metrics", "--port", str(port)],
        env={**os.environ, "REPORT_PIPELINE_LEDGER_URL": ledger_url(down_postgres)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/metrics"

    def up() -> float | None:
        try:
            text = requests.get(url, timeout=GIVES_UP_WITHIN).text
        except requests.ConnectionError:
            return None  # not listening yet
        return next(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "saga_ledger_up"
        )

    try:
        wait_until(lambda: up() is not None, timeout=30, interval=0.1)
        assert [up(), up()] == [0, 0]
    finally:
        exporter.terminate()
        _, stderr = exporter.communicate(timeout=10)
    assert_one_clear_line(stderr, "Connection refused")


def test_status_of_a_hung_ledger_is_one_line_on_stderr_within_the_connect_timeout(
    hung_postgres,
) -> None:
    started = time.monotonic()
    result = status_command(ledger_url(hung_postgres))
    assert time.monotonic() - started < GIVES_UP_WITHIN
    assert (result.returncode, result.stdout) == (UNREACHABLE, "")
    assert_one_clear_line(result.stderr, "timeout expired")


def test_status_of_a_down_ledger_is_one_line_on_stderr(down_postgres) -> None:
    result = status_command(ledger_url(down_postgres), "some-saga", "--follow")
    assert (result.returncode, result.stdout) == (UNREACHABLE, "")
    assert_one_clear_line(result.stderr, "Connection refused")


def test_status_with_a_url_that_is_not_one_says_so_without_quoting_it() -> None:
    result = status_command(f"report_pipeline:{PASSWORD}@127.0.0.1/ledger")
    assert (
        result.returncode != 0
        and "REPORT_PIPELINE_LEDGER_URL is not a database URL" in result.stderr
    )
    assert PASSWORD not in result.stderr and "Traceback" not in result.stderr


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_ledger(request, tmp_path) -> Iterator[SqlLedger]:
    """A ledger no saga has written to yet: its tables are not created."""
    if request.param == "postgresql":
        ledger = SqlLedger(isolated_schema_url(request.getfixturevalue("postgres_url")))
    else:
        ledger = SqlLedger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield ledger
    ledger.close()


def test_an_empty_ledger_is_up_with_every_family_and_no_samples(empty_ledger) -> None:
    _, registry = scrape(empty_ledger)
    families = {f.name: f for f in registry.collect()}
    assert families["saga_ledger_up"].samples[0].value == 1
    assert {"saga_executions", "saga_sagas", "saga_trino_errors", "saga_alert_deliveries"} <= set(
        families
    )
    assert [
        name
        for name, f in families.items()
        if f.samples
        and name.startswith("saga_")
        and name not in ("saga_ledger_up", "saga_ledger_scrape_duration_seconds")
    ] == []


def test_status_of_an_empty_ledger_has_no_sagas(empty_ledger, capsys) -> None:
    assert describe_recent(empty_ledger) == "no sagas in the ledger"
    assert describe_saga(empty_ledger, "s1") == "no saga s1"
    assert show_status(empty_ledger, "s1", out=io.StringIO()) == 1
    assert capsys.readouterr().err == "no saga s1 in the ledger\n"
