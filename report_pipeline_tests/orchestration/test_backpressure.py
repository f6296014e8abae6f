"""Backpressure: many analysts launching at once never put more statements on Trino than the pool
allows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from report_pipeline.local_trino import Fault
from report_pipeline.orchestration.resources import STEP_SOURCE
from report_pipeline.saga import SagaState
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.orchestration.conftest import DAILY_PARAMETERS, STEP_STATEMENTS

RUNS = 12  # four times the pool: enough to queue, few enough to keep the suite short
POOL_LIMIT = 3
START = start_saga_config(DAILY_PARAMETERS)


def set_pool_limit(stack, limit: int) -> None:
    """As an operator would (and as the compose stack's daemon does on start)."""
    dagster = Path(sys.executable).parent / "dagster"
    subprocess.run(
        [str(dagster), "instance", "concurrency", "set", "trino", str(limit)],
        check=True,
        env={**os.environ, **stack.env},
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def burst(dagster_stack, local_trino, ledger) -> dict:
    """RUNS runs of daily_country_report submitted at once, each statement held 2 s (a stall)."""
    set_pool_limit(dagster_stack, POOL_LIMIT)
    statements = STEP_STATEMENTS["daily_country_report"]
    for step in ("create_summary", "write_report", "drop_summary"):
        local_trino.inject(Fault(pattern=statements[step], action="stall", seconds=2.0, times=None))
    local_trino.engine.reset_peak()
    try:
        run_ids = [dagster_stack.launch("daily_country_report", START) for _ in range(RUNS)]
        statuses = {run_id: dagster_stack.wait_for_run(run_id, timeout=900) for run_id in run_ids}
    finally:
        local_trino.engine.faults.clear()
    peak = local_trino.engine.peak_running_by_source.get(STEP_SOURCE, 0)
    print(
        f"\nbackpressure: {RUNS} runs, pool {POOL_LIMIT}: "
        f"at most {peak} report statements at once on the engine"
    )
    return {"run_ids": run_ids, "statuses": statuses, "peak": peak}


def test_the_engine_never_runs_more_statements_than_the_pool_allows(burst) -> None:
    assert burst["peak"] <= POOL_LIMIT


def test_the_pool_is_used_to_its_limit(burst) -> None:
    assert burst["peak"] == POOL_LIMIT  # the runs did overlap: the limit, not luck, kept it at 3


def test_every_submitted_run_reaches_a_terminal_state_and_succeeds(burst) -> None:
    assert len(set(burst["run_ids"])) == RUNS
    assert list(burst["statuses"].values()) == ["SUCCESS"] * RUNS


def test_no_saga_is_lost(burst, ledger) -> None:
    states = [ledger.get_saga(run_id).state for run_id in burst["run_ids"]]
    assert states == [SagaState.SUCCEEDED] * RUNS
