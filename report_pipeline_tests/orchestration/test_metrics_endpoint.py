"""The metrics endpoint (`report-pipeline metrics`, a real process) scraped after real saga runs,
and the JSON logs of a real run: one saga's lines found by its ids."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from report_pipeline.local_trino import Fault
from report_pipeline.saga import SagaState
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.conftest import free_port, wait_until
from report_pipeline_tests.orchestration.conftest import (
    DAILY_PARAMETERS,
    STEP_STATEMENTS,
    launch,
    saga_of,
)

# the scrapes follow real report runs (~25 s of them): not in make test-fast
pytestmark = pytest.mark.slow

DAILY = "daily_country_report"
STEPS = STEP_STATEMENTS[DAILY]
README = Path(__file__).resolve().parents[2] / "README.md"
Sample = tuple[str, frozenset]


class Exporter:
    """`report-pipeline metrics` in its own process, as deployed."""

    def __init__(self, env: dict[str, str]):
        self.port = free_port()
        self.env = env
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "report_pipeline.cli", "metrics", "--port", str(self.port)],
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_until(self._answers, timeout=30, interval=0.1)

    def stop(self) -> None:
        process = self._started()
        process.terminate()
        assert process.wait(timeout=10) == 0

    def _started(self) -> subprocess.Popen:
        assert self.process is not None, "start() it first"
        return self.process

    def _answers(self) -> bool:
        process = self._started()
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            return requests.get(self.url, timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def scrape(self) -> dict[Sample, float]:
        response = requests.get(self.url, timeout=10)
        response.raise_for_status()
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text)
            for s in family.samples
        }


def value(scrape: dict[Sample, float], name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def exporter(pipeline_env: dict) -> Iterator[Exporter]:
    exporter = Exporter(pipeline_env)
    exporter.start()
    yield exporter
    exporter.stop()


@pytest.fixture(scope="module")
def mixed_runs(exporter: Exporter, dagster_instance, local_trino, ledger) -> dict:
    """One saga that succeeds, one compensated, one FAILED_NEEDS_MANUAL; scrapes before, after."""
    before = exporter.scrape()
    sagas = {"succeeded": saga_of(launch(dagster_instance, DAILY))}
    local_trino.inject(
        Fault(pattern=STEPS["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    sagas["compensated"] = saga_of(launch(dagster_instance, DAILY))
    local_trino.inject(
        Fault(pattern=STEPS["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    local_trino.inject(
        Fault(
            pattern=STEPS["drop_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            times=None,
        )
    )
    try:
        sagas["failed_needs_manual"] = saga_of(launch(dagster_instance, DAILY))
    finally:
        local_trino.engine.faults.clear()
    assert {
        status: ledger.get_saga(saga_id).state.value.lower() for status, saga_id in sagas.items()
    } == {status: status for status in sagas}
    return {"before": before, "after": exporter.scrape(), "sagas": sagas}


def delta(mixed_runs: dict, name: str, **labels: str) -> float:
    return value(mixed_runs["after"], name, **labels) - value(mixed_runs["before"], name, **labels)


@pytest.mark.parametrize("status", ["succeeded", "compensated", "failed_needs_manual"])
def test_each_saga_outcome_adds_one_execution(mixed_runs, status) -> None:
    assert delta(mixed_runs, "saga_executions_total", saga_name=DAILY, status=status) == 1
    assert delta(mixed_runs, "saga_duration_seconds_count", saga_name=DAILY, status=status) == 1


def test_the_saga_left_for_a_person_shows_in_the_state_gauge(mixed_runs) -> None:
    assert delta(mixed_runs, "saga_sagas", saga_name=DAILY, state="FAILED_NEEDS_MANUAL") == 1
    assert delta(mixed_runs, "saga_sagas", saga_name=DAILY, state="SUCCEEDED") == 1


def test_step_durations_count_each_attempt_by_outcome(mixed_runs) -> None:

    def step(name: str, status: str) -> float:
        return delta(
            mixed_runs,
            "saga_step_duration_seconds_count",
            saga_name=DAILY,
            step_name=name,
            status=status,
        )

    assert (
        step("create_summary", "succeeded"),
        step("write_report", "succeeded"),
        step("write_report", "failed"),
        step("drop_summary", "succeeded"),
    ) == (3, 1, 2, 1)


def test_compensations_count_the_undos_and_the_failed_retries(mixed_runs) -> None:

    def undo(name: str, outcome: str) -> float:
        return delta(
            mixed_runs,
            "saga_compensations_total",
            saga_name=DAILY,
            step_name=name,
            outcome=outcome,
        )

    # write_report's partial effects are undone in both failed sagas; create_summary's undo fails 4
    # times in one
    assert (
        undo("write_report", "succeeded"),
        undo("create_summary", "succeeded"),
        undo("create_summary", "failed"),
    ) == (2, 1, 4)


def test_trino_errors_are_counted_by_name(mixed_runs) -> None:
    assert (
        delta(
            mixed_runs, "saga_trino_errors_total", saga_name=DAILY, error_name="PERMISSION_DENIED"
        )
        == 2
    )
    assert (
        delta(
            mixed_runs,
            "saga_trino_errors_total",
            saga_name=DAILY,
            error_name="HIVE_METASTORE_ERROR",
        )
        == 4
    )


def test_trino_statement_figures_grow_with_the_runs(mixed_runs) -> None:
    assert delta(mixed_runs, "saga_trino_rows_total", saga_name=DAILY, step_name="write_report") > 0
    assert (
        delta(
            mixed_runs,
            "saga_trino_processed_bytes_total",
            saga_name=DAILY,
            step_name="create_summary",
        )
        > 0
    )
    assert delta(mixed_runs, "saga_trino_queued_seconds_count", saga_name=DAILY) >= 7


def test_a_restarted_exporter_reports_counters_that_did_not_go_backwards(
    mixed_runs, exporter
) -> None:
    exporter.stop()
    exporter.start()
    again = exporter.scrape()
    counters = {
        key: v
        for key, v in mixed_runs["after"].items()
        if key[0].endswith(("_total", "_count", "_sum", "_bucket"))
        and not key[0].startswith(("process_", "python_"))
    }
    assert len(counters) > 50
    # the shared daemon may deliver alerts meanwhile: counters may grow, never fall or vanish
    assert [key for key, before in counters.items() if again.get(key, -1.0) < before] == []


def test_a_second_exporter_gives_the_same_figures(mixed_runs, pipeline_env, exporter) -> None:

    def same(scrape: dict) -> dict:
        return {
            k: v
            for k, v in scrape.items()
            if k[0].startswith("saga_")
            and not k[0].startswith(("saga_ledger_scrape", "saga_oldest"))
        }

    other = Exporter(pipeline_env)
    other.start()
    try:
        # compare while the ledger holds still (the shared daemon may write to it)
        for _ in range(5):
            ours, theirs, ours_after = exporter.scrape(), other.scrape(), exporter.scrape()
            if same(ours) == same(ours_after):
                break
    finally:
        other.stop()
    assert same(ours) == same(theirs)


def test_the_endpoint_reports_the_ledger_up(exporter) -> None:
    assert value(exporter.scrape(), "saga_ledger_up") == 1


# --- log correlation ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compensated_run_logs(dagster_instance, local_trino, ledger, tmp_path_factory) -> dict:
    """A compensated saga run by `dagster job execute` (as launched runs are); its stderr kept."""
    folder = tmp_path_factory.mktemp("logs")
    config = folder / "run.yaml"
    config.write_text(yaml.safe_dump(start_saga_config(DAILY_PARAMETERS)))
    before = {r.run_id for r in dagster_instance.get_runs()}
    local_trino.inject(
        Fault(pattern=STEPS["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    try:
        process = subprocess.run(
            [
                sys.executable,
                "-m",
                "dagster",
                "job",
                "execute",
                "-m",
                "report_pipeline.definitions",
                "-j",
                DAILY,
                "-c",
                str(config),
            ],
            env={**os.environ, "DAGSTER_HOME": dagster_instance.root_directory},
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        local_trino.engine.faults.clear()
    [run] = [r for r in dagster_instance.get_runs() if r.run_id not in before]
    saga_id = saga_of(run)
    assert ledger.get_saga(saga_id).state == SagaState.COMPENSATED, process.stderr[-3000:]
    log_file = folder / "pipeline.log"
    log_file.write_text(process.stderr)
    lines = [json.loads(line) for line in process.stderr.splitlines() if line.startswith('{"')]
    return {"saga_id": saga_id, "run_id": run.run_id, "lines": lines, "file": log_file}


def test_every_log_line_of_the_saga_carries_its_saga_run_and_step(compensated_run_logs) -> None:
    lines = compensated_run_logs["lines"]
    assert len(lines) >= 10
    for line in lines:
        assert (line.get("saga_id"), line.get("run_id"), line.get("report")) == (
            compensated_run_logs["saga_id"],
            compensated_run_logs["run_id"],
            DAILY,
        ), line
        assert line.get("step"), line


def test_every_statement_log_line_carries_its_trino_query_id(compensated_run_logs, ledger) -> None:
    statement_lines = [
        line for line in compensated_run_logs["lines"] if line["event"].startswith("statement ")
    ]
    assert {line["event"] for line in statement_lines} >= {"statement finished", "statement failed"}
    for line in statement_lines:
        assert re.fullmatch(r"\d{8}_\d{6}_\d{5}_\w+", line.get("query_id") or ""), line
    logged = {line["query_id"] for line in statement_lines}
    recorded = {a.query_id for a in ledger.attempts(compensated_run_logs["saga_id"]) if a.query_id}
    assert recorded <= logged


def test_the_readme_jq_recipe_pulls_one_sagas_history(compensated_run_logs) -> None:
    [recipe] = re.findall(r"^(jq .*saga_id.*)$", README.read_text(), flags=re.MULTILINE)[:1]
    command = recipe.replace("$SAGA_ID", compensated_run_logs["saga_id"]).replace(
        "pipeline.log", str(compensated_run_logs["file"])
    )
    output = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert output.returncode == 0, output.stderr
    events = output.stdout.splitlines()
    assert len(events) == len(compensated_run_logs["lines"])
    assert any("COMPENSATED" in event for event in events)
