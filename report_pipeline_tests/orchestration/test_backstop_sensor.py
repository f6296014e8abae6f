"""saga_backstop_sensor, evaluated on the real instance and ledger: which sagas it compensates,
and how often."""

from __future__ import annotations

import uuid

import dagster as dg
import pytest

from report_pipeline.orchestration.compensation import (
    MAX_COMPENSATION_RUNS,
    build_backstop_sensor,
    build_compensation_job,
)
from report_pipeline.orchestration.resources import LedgerResource
from report_pipeline.saga import RunKind, SagaState
from report_pipeline_tests.builders import add_backlog, move_saga, saga_in
from report_pipeline_tests.orchestration.conftest import REPORTS, launch


@pytest.fixture(scope="module")
def sensor() -> dg.SensorDefinition:
    return build_backstop_sensor(build_compensation_job(REPORTS))


@pytest.fixture(scope="module")
def ended_run(dagster_instance) -> str:
    """A run that has ended: sagas tied to it below look like the saga of a killed run."""
    return launch(dagster_instance, "daily_country_report").run_id


def evaluate(sensor, instance, url: str) -> dg.SensorExecutionData:
    with dg.build_sensor_context(
        instance=instance, resources={"ledger": LedgerResource(url=url)}
    ) as context:
        return sensor.evaluate_tick(context)


def orphan_saga(ledger, run_id: str, state: SagaState = SagaState.RUNNING) -> str:
    """A saga left in `state` by the ended run `run_id`."""
    parameters = {"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": 1}
    return saga_in(
        ledger, state, saga_id=f"orphan-{uuid.uuid4()}", parameters=parameters, run_id=run_id
    )


def settle(ledger, saga_id: str) -> None:
    """Bring a test's saga to an end state, so the daemon's own backstop ticks leave it alone."""
    move_saga(ledger, saga_id, SagaState.COMPENSATED)


def requested(result: dg.SensorExecutionData) -> dict[str, dg.RunRequest]:
    return {r.tags["saga/id"]: r for r in result.run_requests}


def test_every_unfinished_saga_of_an_ended_run_is_requested_in_one_tick(
    sensor, dagster_instance, ledger, ended_run, pipeline_env
) -> None:
    sagas = [
        orphan_saga(ledger, ended_run),
        orphan_saga(ledger, ended_run, SagaState.CANCELLED),
        orphan_saga(ledger, ended_run),
    ]
    result = requested(
        evaluate(sensor, dagster_instance, pipeline_env["REPORT_PIPELINE_LEDGER_URL"])
    )
    assert set(sagas) <= set(result)
    request = result[sagas[1]]
    assert request.run_config["ops"]["compensate"]["config"]["saga_id"] == sagas[1]
    assert request.run_key == f"compensate:{sagas[1]}:1:0"
    for saga_id in sagas:
        settle(ledger, saga_id)


def test_a_fresh_sensor_finds_the_same_sagas_with_the_same_run_keys(
    sensor, dagster_instance, ledger, ended_run, pipeline_env
) -> None:
    saga_id = orphan_saga(ledger, ended_run)
    url = pipeline_env["REPORT_PIPELINE_LEDGER_URL"]
    first = requested(evaluate(sensor, dagster_instance, url))[saga_id]
    # no cursor is kept: after a daemon restart the next tick asks for the same run, deduplicated
    # by its key
    again = requested(evaluate(sensor, dagster_instance, url))[saga_id]
    assert first.run_key == again.run_key
    settle(ledger, saga_id)


def test_terminal_sagas_are_left_alone(
    sensor, dagster_instance, ledger, ended_run, pipeline_env
) -> None:
    result = requested(
        evaluate(sensor, dagster_instance, pipeline_env["REPORT_PIPELINE_LEDGER_URL"])
    )
    assert ended_run not in result  # its saga SUCCEEDED


def test_saga_whose_compensation_runs_keep_ending_needs_manual(
    sensor, dagster_instance, ledger, ended_run, pipeline_env
) -> None:
    saga_id = orphan_saga(ledger, ended_run)
    for n in range(
        MAX_COMPENSATION_RUNS
    ):  # runs the instance no longer knows: they cannot be going
        ledger.link_run(saga_id, f"{ended_run}-compensation-{n}", ended_run, RunKind.COMPENSATION)
    result = requested(
        evaluate(sensor, dagster_instance, pipeline_env["REPORT_PIPELINE_LEDGER_URL"])
    )
    assert saga_id not in result
    assert ledger.get_saga(saga_id).state == SagaState.FAILED_NEEDS_MANUAL


def test_a_backlog_larger_than_any_page_is_requested_in_full_oldest_first(
    sensor, dagster_instance, ended_run, backlog_ledger
) -> None:
    backlog = add_backlog(backlog_ledger, 1500, SagaState.RUNNING, ended_run)
    result = evaluate(
        sensor, dagster_instance, backlog_ledger.engine.url.render_as_string(hide_password=False)
    )
    assert [r.tags["saga/id"] for r in result.run_requests] == backlog
