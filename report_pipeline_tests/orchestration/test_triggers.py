"""Schedules, partitions and backfills, and the data-arrival sensor."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from report_pipeline.orchestration.jobs import build_report_job
from report_pipeline.orchestration.names import PARTITION_TAG, START_OP, TRIGGER_TAG
from report_pipeline.orchestration.resources import LedgerResource, TrinoResource
from report_pipeline.orchestration.triggers import build_arrival_sensor, build_schedule
from report_pipeline_tests.conftest import wait_for
from report_pipeline_tests.orchestration.conftest import REPORTS, query
from report_pipeline_tests.orchestration.stack import TERMINAL

DAILY, WEEKLY = REPORTS["daily_country_report"], REPORTS["weekly_engagement_report"]


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_daily_schedule_runs_the_previous_day_with_its_parameters() -> None:
    schedule = build_schedule(DAILY, build_report_job(DAILY))
    assert schedule is not None and schedule.cron_schedule == "0 6 * * *"
    with dg.build_schedule_context(scheduled_execution_time=at("2026-01-10T06:00:00")) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-01-09"
    assert request.run_config["ops"][START_OP]["config"] == {
        "start_date": "2026-01-09",
        "end_date": "2026-01-09",
        "min_events": 5,
    }


def test_weekly_schedule_runs_the_week_before_on_mondays() -> None:
    schedule = build_schedule(WEEKLY, build_report_job(WEEKLY))
    assert schedule is not None and schedule.cron_schedule == "0 7 * * 1"
    with dg.build_schedule_context(scheduled_execution_time=at("2026-01-19T07:00:00")) as context:
        [request] = schedule.evaluate_tick(context).run_requests or []
    assert request.partition_key == "2026-01-12"
    assert request.run_config["ops"][START_OP]["config"] == {
        "week_start": "2026-01-12",
        "min_active_days": 1,
    }


@pytest.fixture
def arrival(local_trino):
    job = build_report_job(DAILY)
    sensor = build_arrival_sensor(DAILY, job)
    assert sensor is not None
    trino = TrinoResource(
        host=local_trino.host,
        port=local_trino.port,
        user="arrival-tests",
        catalog=local_trino.catalog,
    )
    repository = dg.Definitions(
        jobs=[job],
        sensors=[sensor],
        resources={"trino": trino, "ledger": LedgerResource(url="sqlite:///:memory:")},
    ).get_repository_def()

    def evaluate(cursor: str | None = None) -> tuple[list[dg.RunRequest], str | None, str | None]:
        with dg.build_sensor_context(
            cursor=cursor, resources={"trino": trino}, repository_def=repository
        ) as context:
            result = sensor.evaluate_tick(context)
        return list(result.run_requests or []), result.cursor, result.skip_message

    return evaluate


def test_first_evaluation_requests_only_the_newest_complete_day(arrival) -> None:
    requests, cursor, _ = arrival()
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("2026-03-30", "daily_country_report:2026-03-30")
    ]
    assert cursor == "2026-03-30"


def test_catches_up_every_day_after_its_cursor(arrival) -> None:
    requests, cursor, _ = arrival("2026-03-27")
    assert [r.partition_key for r in requests] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    assert len({r.run_key for r in requests}) == 3 and cursor == "2026-03-30"


def test_nothing_new_is_a_skip_and_keeps_the_cursor(arrival) -> None:
    requests, _, skip = arrival("2026-03-30")
    assert requests == [] and "every partition was requested" in skip


def test_new_data_makes_the_next_day_complete(arrival, local_trino) -> None:
    query(
        local_trino,
        "INSERT INTO events (event_id, user_id, event_type, event_date, event_time, duration_ms) "
        "VALUES (-1, 1, 'click', DATE '2026-04-01', TIMESTAMP '2026-04-01 00:00:01', 1)",
    )
    try:
        requests, cursor, _ = arrival("2026-03-30")
        assert [r.partition_key for r in requests] == ["2026-03-31"] and cursor == "2026-03-31"
    finally:
        query(local_trino, "DELETE FROM events WHERE event_id = -1")


def test_backfill_over_three_days_runs_one_saga_per_day(dagster_stack, ledger) -> None:
    days = ["2026-01-05", "2026-01-06", "2026-01-07"]
    data = dagster_stack.graphql(
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
        __typename ... on LaunchBackfillSuccess { backfillId }
        ... on PythonError { message } } }""",
        {
            "p": {
                "selector": {
                    "partitionSetName": "daily_country_report_partition_set",
                    "repositorySelector": {
                        "repositoryLocationName": "report_pipeline",
                        "repositoryName": "__repository__",
                    },
                },
                "partitionNames": days,
            }
        },
    )["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    backfill = data["backfillId"]
    runs: list[dict] = []

    def ended() -> bool:
        runs[:] = dagster_stack.graphql(
            """query($f: RunsFilter) { runsOrError(filter: $f) { ... on Runs {
            results { runId status tags { key value } } } } }""",
            {"f": {"tags": [{"key": "dagster/backfill", "value": backfill}]}},
        )["runsOrError"]["results"]
        return len(runs) == 3 and all(r["status"] in TERMINAL for r in runs)

    wait_for(ended, timeout=180, interval=1)  # the runs' statuses are asserted next, ended or not
    assert sorted(r["status"] for r in runs) == ["SUCCESS"] * 3
    sagas = {ledger.get_saga(r["runId"]).partition: ledger.get_saga(r["runId"]) for r in runs}
    assert sorted(sagas) == days
    for day, saga in sagas.items():
        assert saga.parameters == {"start_date": day, "end_date": day, "min_events": 5}
        assert saga.trigger == f"backfill:{backfill}"
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags[TRIGGER_TAG] == f"backfill:{backfill}" and tags[PARTITION_TAG] in days
