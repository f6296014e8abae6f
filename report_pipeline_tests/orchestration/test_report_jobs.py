"""Reports as sagas on Dagster, end to end: the real instance on Postgres, the real Trino client,
the real engine."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest
import sqlalchemy as sa
import yaml

from report_pipeline.local_trino import Fault
from report_pipeline.local_trino.sample_data import load_sample_data
from report_pipeline.orchestration.jobs import build_report_job
from report_pipeline.orchestration.names import SAGA_STATE_TAG, START_OP
from report_pipeline.orchestration.resources import STEP_SOURCE, LedgerResource, TrinoResource
from report_pipeline.saga import AttemptKind, AttemptStatus, RunKind, SagaState
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.conftest import TEST_EVENTS
from report_pipeline_tests.orchestration.conftest import (
    DAILY_PARAMETERS,
    REPORTS,
    STEP_STATEMENTS,
    STEP_TIMEOUT_SECONDS,
    launch,
    postgres_storage,
    report_rows,
    saga_of,
    scratch_tables,
    step_events,
)

# every test runs report jobs end to end on Dagster (seconds each, ~90 s in all): left out of
# make test-fast
pytestmark = pytest.mark.slow


def upstream_of(spec, step: str) -> set[str]:
    direct = set(spec.steps[step].depends_on)
    return direct.union(*(upstream_of(spec, d) for d in direct))


def runs_beside(spec, a: str, b: str) -> bool:
    """Neither step waits for the other: they may run at the same time."""
    return a not in upstream_of(spec, b) and b not in upstream_of(spec, a)


FAILURE_CASES = [(report, step) for report, steps in STEP_STATEMENTS.items() for step in steps]


def direct(sql: str, parameters: list) -> list[list]:
    """The same computation directly on DuckDB over the same generated data."""
    connection = duckdb.connect()
    connection.execute("ATTACH ':memory:' AS lake")
    load_sample_data(connection, "lake", TEST_EVENTS)
    connection.execute("USE lake.analytics")
    return [list(r) for r in connection.execute(sql, parameters).fetchall()]


def test_daily_report_equals_the_direct_computation(dagster_instance, backend, ledger) -> None:
    run = launch(dagster_instance, "daily_country_report")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    saga_id = saga_of(run)
    rows = sorted((r[4], r[5], r[6]) for r in report_rows(backend, "daily_country_report", saga_id))
    expected = direct(
        """
        WITH s AS (SELECT user_id, count(*) AS n FROM events WHERE event_date BETWEEN ? AND ?
                   GROUP BY user_id HAVING count(*) > ?)
        SELECT u.country, count(*), avg(s.n) FROM users u JOIN s ON u.id = s.user_id
        GROUP BY u.country ORDER BY 1""",
        [dt.date(2026, 1, 1), dt.date(2026, 1, 31), 5],
    )
    assert [tuple(r[:2]) for r in rows] == [tuple(e[:2]) for e in expected]
    assert [r[2] for r in rows] == pytest.approx([e[2] for e in expected])
    assert ledger.get_saga(saga_id).state == SagaState.SUCCEEDED
    assert scratch_tables(backend, saga_id) == []


def test_weekly_report_equals_the_direct_computation(dagster_instance, backend) -> None:
    run = launch(dagster_instance, "weekly_engagement_report")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    rows = sorted(
        tuple(r[2:]) for r in report_rows(backend, "weekly_engagement_report", saga_of(run))
    )
    expected = direct(
        """
        WITH a AS (SELECT user_id, count(*) AS events, count(DISTINCT event_date) AS days
                   FROM events WHERE event_date >= ? AND event_date < ? GROUP BY user_id
                   HAVING count(DISTINCT event_date) >= ?),
             p AS (SELECT user_id, count(*) AS purchases FROM events WHERE event_type = 'purchase'
                   AND event_date >= ? AND event_date < ? GROUP BY user_id)
        SELECT u.country, count(*), avg(a.events), avg(a.days), sum(coalesce(p.purchases, 0))
        FROM a JOIN users u ON u.id = a.user_id LEFT JOIN p ON p.user_id = a.user_id
        GROUP BY u.country ORDER BY 1""",
        [dt.date(2026, 1, 5), dt.date(2026, 1, 12), 2, dt.date(2026, 1, 5), dt.date(2026, 1, 12)],
    )
    assert [(r[0], r[1], r[4]) for r in rows] == [(e[0], e[1], e[4]) for e in expected]
    assert [r[2] for r in rows] == pytest.approx([e[2] for e in expected])
    assert scratch_tables(backend, saga_of(run)) == []


def test_run_shows_saga_tags_and_step_metadata(dagster_instance) -> None:
    run = launch(dagster_instance, "daily_country_report")
    assert run.tags[SAGA_STATE_TAG] == "SUCCEEDED"
    outputs = {
        e.step_key: e.dagster_event.event_specific_data.metadata
        for e in step_events(dagster_instance, run.run_id, dg.DagsterEventType.STEP_OUTPUT)
    }
    write = outputs["write_report"]
    assert write["trino_query_id"].value
    assert write["trino_ui"].value.endswith(write["trino_query_id"].value)
    assert write["report_row_count"].value == 12
    assert write["report_preview"].value.startswith("| country")
    assert write["elapsed_seconds"].value > 0
    assert outputs["create_summary"]["rows"].value > 0


def test_a_chain_writes_its_saga_state_tag_only_when_the_state_changes(
    dagster_instance, monkeypatch
) -> None:
    written: list[str] = []
    add_run_tags = dagster_instance.add_run_tags

    def recording(run_id: str, new_tags: dict) -> None:
        if SAGA_STATE_TAG in new_tags:
            written.append(new_tags[SAGA_STATE_TAG])
        add_run_tags(run_id, new_tags)

    monkeypatch.setattr(dagster_instance, "add_run_tags", recording)
    run = launch(dagster_instance, "daily_country_report")  # 3 steps, in-process
    assert written == ["RUNNING", "SUCCEEDED"]  # the start, then the last step
    assert run.tags[SAGA_STATE_TAG] == "SUCCEEDED"


def test_a_run_keeps_its_storage_connections_instead_of_one_per_event(
    postgres_database, pipeline_env
) -> None:
    storage = postgres_storage(postgres_database)
    opened: list[object] = []

    def count(*_: object) -> None:
        opened.append(1)

    # a fresh instance: the session's shared one is pooled already by earlier runs
    with dg.instance_for_test(overrides={"storage": storage}) as instance:
        sa.event.listen(sa.Engine, "connect", count)
        try:
            run = launch(instance, "daily_country_report")
        finally:
            sa.event.remove(sa.Engine, "connect", count)
        events = len(instance.all_logs(run.run_id))
    assert run.status == dg.DagsterRunStatus.SUCCESS
    # with a new connection per storage call this run opened 63 (the instance's own start-up and
    # the ledger's pool included); kept connections leave the start-up and the events before the
    # resources are set up
    assert events >= 25
    assert len(opened) <= 30, f"{len(opened)} PostgreSQL connections for {events} events"


@pytest.mark.parametrize(("report", "failing_step"), FAILURE_CASES)
def test_failure_at_each_step_is_compensated_in_reverse(
    dagster_instance, backend, ledger, report, failing_step
) -> None:
    backend.inject(
        Fault(
            pattern=STEP_STATEMENTS[report][failing_step],
            action="error",
            error_name="PERMISSION_DENIED",
            message="Access Denied (injected)",
        )
    )
    run = launch(dagster_instance, report)
    saga_id = saga_of(run)
    assert run.status == dg.DagsterRunStatus.FAILURE
    saga = ledger.get_saga(saga_id)
    assert (saga.state, saga.failed_step) == (SagaState.COMPENSATED, failing_step)
    assert run.tags[SAGA_STATE_TAG] == "COMPENSATED"
    attempts = ledger.attempts(saga_id)
    actions = [a for a in attempts if a.kind == AttemptKind.ACTION]
    assert [
        a.step for a in actions if a.status == AttemptStatus.FAILED and a.step == failing_step
    ] == [failing_step]
    # Any other failed step ran beside it: on Trino's PostgreSQL connector a CTAS whose target the
    # compensation drops meanwhile fails (JDBC_ERROR); the local engine's CTAS is atomic.
    others = {a.step for a in actions if a.status == AttemptStatus.FAILED} - {failing_step}
    assert all(runs_beside(REPORTS[report], step, failing_step) for step in others), others
    spec = REPORTS[report]
    expected = [
        a.step
        for a in sorted(actions, key=lambda a: a.id, reverse=True)
        if spec.steps[a.step].compensation
    ]
    undos = [a for a in attempts if a.kind == AttemptKind.COMPENSATION]
    # A parallel branch still running when the hook compensates is undone then, and again by itself
    # when its statement finishes (the fence): the first pass is in reverse order, and every step's
    # last undo comes after its last action.
    assert list(dict.fromkeys(a.step for a in undos)) == expected
    for step in expected:
        last_action = max(a.id for a in actions if a.step == step)
        assert (
            max(a.id for a in undos if a.step == step and a.status == AttemptStatus.SUCCEEDED)
            > last_action
        )
    assert [t.new_state for t in ledger.transitions(saga_id)] == [
        SagaState.RUNNING,
        SagaState.FAILED,
        SagaState.COMPENSATING,
        SagaState.COMPENSATED,
    ]
    assert scratch_tables(backend, saga_id) == []
    assert report_rows(backend, report, saga_id) == []


def test_compensation_failing_once_then_succeeding_ends_compensated(
    dagster_instance, backend, ledger
) -> None:
    steps = STEP_STATEMENTS["daily_country_report"]
    backend.inject(
        Fault(pattern=steps["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    backend.inject(
        Fault(
            pattern=steps["drop_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            times=1,
        )
    )
    run = launch(dagster_instance, "daily_country_report")
    saga_id = saga_of(run)
    assert ledger.get_saga(saga_id).state == SagaState.COMPENSATED
    undo = [
        (a.step, a.status) for a in ledger.attempts(saga_id) if a.kind == AttemptKind.COMPENSATION
    ]
    assert undo == [
        ("write_report", AttemptStatus.SUCCEEDED),
        ("create_summary", AttemptStatus.FAILED),
        ("create_summary", AttemptStatus.SUCCEEDED),
    ]
    assert scratch_tables(backend, saga_id) == []


def test_compensation_that_always_fails_ends_failed_needs_manual(
    dagster_instance, backend, ledger
) -> None:
    steps = STEP_STATEMENTS["daily_country_report"]
    backend.inject(
        Fault(pattern=steps["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    backend.inject(
        Fault(
            pattern=steps["drop_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            times=None,
        )
    )
    run = launch(dagster_instance, "daily_country_report")
    saga_id = saga_of(run)
    backend.proxy.faults.clear()
    saga = ledger.get_saga(saga_id)
    assert saga.state == SagaState.FAILED_NEEDS_MANUAL
    assert run.tags[SAGA_STATE_TAG] == "FAILED_NEEDS_MANUAL"
    failed = [
        a
        for a in ledger.attempts(saga_id)
        if a.kind == AttemptKind.COMPENSATION and a.step == "create_summary"
    ]
    assert len(failed) == 4 and all(a.error_name == "HIVE_METASTORE_ERROR" for a in failed)
    errors = [
        r.event_log_entry.message
        for r in dagster_instance.get_records_for_run(run.run_id).records
        if r.event_log_entry.level >= 40
    ]
    assert any("FAILED_NEEDS_MANUAL" in message for message in errors)
    # what a person would find and remove: the summary table is still there, and the ledger names it
    assert len(scratch_tables(backend, saga_id)) == 1
    assert list(ledger.created_tables(saga_id)) == [
        f"lake.scratch.{scratch_tables(backend, saga_id)[0]}"
    ]


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({**DAILY_PARAMETERS, "end_date": "2025-12-31"}, "end_date"),  # end before start
        ({**DAILY_PARAMETERS, "start_date": "2026-13-01"}, "start_date"),  # not a date
        ({**DAILY_PARAMETERS, "start_date": "20260101"}, "start_date"),  # not YYYY-MM-DD
        ({**DAILY_PARAMETERS, "min_events": -1}, "min_events"),  # below the minimum
        ({**DAILY_PARAMETERS, "min_events": None}, "min_events: a value is required"),
        (
            {**DAILY_PARAMETERS, "start_date": "2024-01-01"},
            "at most 366",
        ),  # range longer than a year
    ],
)
def test_bad_parameters_fail_before_any_statement_or_saga(
    dagster_instance, backend, ledger, parameters, problem
) -> None:
    # counted by client source: the shared daemon's sweeper may query the engine meanwhile
    def report_statements() -> int:
        return len(backend.statements(source=STEP_SOURCE))

    statements_before = report_statements()
    run = launch(dagster_instance, "daily_country_report", parameters)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert ledger.get_saga(run.run_id) is None
    assert report_statements() == statements_before
    failure = step_events(dagster_instance, run.run_id, dg.DagsterEventType.STEP_FAILURE)[0]
    assert failure.step_key == START_OP
    error = failure.dagster_event.step_failure_data.error
    assert error is not None
    message = error.message.strip()
    assert message.startswith(
        "dagster._core.definitions.events.Failure: Invalid parameters for daily_country_report"
    )
    assert problem in message and "\n" not in message  # one line, naming what is wrong


def test_transient_error_is_retried_and_the_saga_succeeds(
    dagster_instance, backend, ledger
) -> None:
    backend.inject(
        Fault(
            pattern=STEP_STATEMENTS["daily_country_report"]["create_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            times=1,
        )
    )
    run = launch(dagster_instance, "daily_country_report")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    attempts = [
        (a.attempt, a.status)
        for a in ledger.attempts(saga_of(run))
        if a.step == "create_summary" and a.kind == AttemptKind.ACTION
    ]
    assert attempts == [(1, AttemptStatus.FAILED), (2, AttemptStatus.SUCCEEDED)]


def test_parallel_branches_run_at_the_same_time(dagster_instance, local_trino, ledger) -> None:
    steps = STEP_STATEMENTS["weekly_engagement_report"]
    for step in ("build_activity", "build_purchases"):
        local_trino.inject(Fault(pattern=steps[step], action="stall", seconds=3))
    run = launch(dagster_instance, "weekly_engagement_report")
    assert run.status == dg.DagsterRunStatus.SUCCESS
    spans = {
        a.step: (a.started_at, a.ended_at)
        for a in ledger.attempts(saga_of(run))
        if a.step in ("build_activity", "build_purchases")
    }
    (a_start, a_end), (b_start, b_end) = spans["build_activity"], spans["build_purchases"]
    assert a_start < b_end and b_start < a_end, f"branches did not overlap: {spans}"


def test_progress_is_logged_while_a_long_statement_runs(dagster_instance, local_trino) -> None:
    local_trino.inject(
        Fault(
            pattern=STEP_STATEMENTS["daily_country_report"]["create_summary"],
            action="stall",
            seconds=STEP_TIMEOUT_SECONDS - 0.5,
        )
    )
    run = launch(dagster_instance, "daily_country_report")
    lines = [
        r.event_log_entry
        for r in dagster_instance.get_records_for_run(run.run_id).records
        if r.event_log_entry.step_key == "create_summary"
        and "create_summary: Trino query" in (r.event_log_entry.user_message or "")
    ]
    running = [e.timestamp for e in lines if " RUNNING " in e.user_message]
    assert len(running) >= 3
    assert max(b - a for a, b in itertools.pairwise(running)) <= 5


def test_concurrent_runs_never_touch_each_others_tables(
    dagster_instance, backend, ledger, tmp_path
) -> None:
    # Two runs at once, each in its own process as launched runs are (`dagster job execute`).
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(start_saga_config(DAILY_PARAMETERS)))
    env = {**os.environ, "DAGSTER_HOME": dagster_instance.root_directory}
    command = [
        sys.executable,
        "-m",
        "dagster",
        "job",
        "execute",
        "-m",
        "report_pipeline.definitions",
        "-j",
        "daily_country_report",
        "-c",
        str(config),
    ]
    before = {r.run_id for r in dagster_instance.get_runs()}
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in processes:
        _, errors = process.communicate(timeout=180)
        assert process.returncode == 0, errors[-3000:]
    runs = [r for r in dagster_instance.get_runs() if r.run_id not in before]
    assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * 2
    first, second = (saga_of(r) for r in runs)
    assert first != second
    assert set(ledger.created_tables(first)).isdisjoint(ledger.created_tables(second))
    assert len(report_rows(backend, "daily_country_report", first)) == 12
    assert len(report_rows(backend, "daily_country_report", second)) == 12
    assert scratch_tables(backend, first) == scratch_tables(backend, second) == []


def test_reexecution_from_failure_completes_the_compensated_saga(
    dagster_instance, backend, ledger
) -> None:
    backend.inject(
        Fault(
            pattern=STEP_STATEMENTS["daily_country_report"]["write_report"],
            action="error",
            error_name="PERMISSION_DENIED",
        )
    )
    failed = launch(dagster_instance, "daily_country_report")
    saga_id = saga_of(failed)
    assert ledger.get_saga(saga_id).state == SagaState.COMPENSATED
    rerun = launch(dagster_instance, "daily_country_report", reexecute_from=failed.run_id)
    assert rerun.status == dg.DagsterRunStatus.SUCCESS
    assert saga_of(rerun) == saga_id
    assert ledger.get_saga(saga_id).state == SagaState.SUCCEEDED
    assert len(report_rows(backend, "daily_country_report", saga_id)) == 12
    assert scratch_tables(backend, saga_id) == []
    assert [(r["run_id"], r["kind"]) for r in ledger.runs(saga_id)] == [
        (failed.run_id, RunKind.RUN),
        (rerun.run_id, RunKind.REEXECUTION),
    ]


def test_a_password_over_plain_http_fails_the_start_step_before_any_statement(
    dagster_instance, backend, ledger, pipeline_env, monkeypatch
) -> None:
    # in-process, so the step sees this test's environment (launched runs read it the same way)
    monkeypatch.setenv("TRINO_PASSWORD", "would-be-refused-by-trino")
    resources = {
        "trino": TrinoResource(
            host=backend.proxy.host, port=backend.proxy.port, user="pipeline-tests"
        ),
        "ledger": LedgerResource(url=pipeline_env["REPORT_PIPELINE_LEDGER_URL"]),
    }
    job = build_report_job(REPORTS["daily_country_report"], dg.in_process_executor)
    result = (
        dg.Definitions(jobs=[job], resources=resources)
        .resolve_job_def(job.name)
        .execute_in_process(
            run_config=start_saga_config(DAILY_PARAMETERS),
            instance=dagster_instance,
            raise_on_error=False,
        )
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_key == START_OP
    error = failure.step_failure_data.error
    assert error is not None
    assert "Invalid Trino settings" in error.message
    assert "need HTTPS" in error.message
    assert "would-be-refused" not in str(result.all_events)  # the secret is never shown
    assert ledger.get_saga(result.run_id) is None
    assert backend.statements(source=STEP_SOURCE) == []
