"""Each undo a compensation runs is an event in the Dagster run's log, wherever the compensation
runs: the failure hook, a `compensate_saga` run, a re-execution taking over a saga its dead run
left behind. Asserted on the events Dagster stored, as the UI reads them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import dagster as dg
import pytest

from report_pipeline.local_trino import Fault
from report_pipeline.orchestration.names import COMPENSATION_RUN_TAG, SAGA_ID_TAG
from report_pipeline.saga import AttemptKind, AttemptStatus, SagaState
from report_pipeline.saga.scratch_names import saga_key
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.orchestration.conftest import (
    DAILY_PARAMETERS,
    STEP_STATEMENTS,
    launch,
    report_rows,
    saga_of,
    scratch_tables,
    step_events,
)
from report_pipeline_tests.orchestration.holding import holding

pytestmark = pytest.mark.slow  # report jobs end to end on Dagster

DAILY = "daily_country_report"
STEPS = STEP_STATEMENTS[DAILY]
REPORT_TABLE = f"lake.reports.{DAILY}"
LOCAL_ONLY = pytest.mark.parametrize("backend", ["local"], indirect=True)


def undo_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogEntry]:
    return [
        e
        for e in step_events(instance, run_id, dg.DagsterEventType.ENGINE_EVENT)
        if e.message.startswith("undo of ")
    ]


def metadata(entry: dg.EventLogEntry) -> dict:
    assert entry.dagster_event is not None
    data = entry.dagster_event.engine_event_data.metadata
    return {key: value.value for key, value in data.items()}


def summary_event(instance: dg.DagsterInstance, run_id: str, saga_id: str) -> dg.EventLogEntry:
    (entry,) = [
        e
        for e in step_events(instance, run_id, dg.DagsterEventType.ENGINE_EVENT)
        if e.message.startswith(f"saga {saga_id} is ")
    ]
    return entry


def undo_attempts(ledger, saga_id: str):
    return [a for a in ledger.attempts(saga_id) if a.kind == AttemptKind.COMPENSATION]


def fail_write_report_and_every_undo_of_the_summary(backend) -> None:
    """write_report fails, and so does every DROP of the summary (until the faults are cleared):
    the saga ends FAILED_NEEDS_MANUAL with the summary table left."""
    backend.inject(
        Fault(pattern=STEPS["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    backend.inject(
        Fault(
            pattern=STEPS["drop_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            times=None,
        )
    )


@LOCAL_ONLY
def test_the_failure_hook_logs_each_undo_with_its_statement_table_rows_and_query(
    dagster_instance, backend, ledger
) -> None:
    # the last step fails once: both earlier steps are undone, the report's rows by a DELETE
    backend.inject(
        Fault(pattern=STEPS["drop_summary"], action="error", error_name="PERMISSION_DENIED")
    )
    run = launch(dagster_instance, DAILY)
    saga_id = saga_of(run)
    written = next(a.rows for a in ledger.attempts(saga_id) if a.step == "write_report" and a.rows)
    events = undo_events(dagster_instance, run.run_id)
    assert [metadata(e)["step"] for e in events] == ["write_report", "create_summary"]
    delete, drop = (metadata(e) for e in events)
    assert delete["statement_kind"] == "DELETE"
    assert delete["table"] == REPORT_TABLE
    assert delete["rows_removed"] == written > 0
    assert drop["statement_kind"] == "DROP TABLE"
    assert drop["table"] == f"lake.scratch.saga_{saga_key(saga_id)}_summary"
    assert drop["rows_removed"] == 0
    ledger_queries = [a.query_id for a in undo_attempts(ledger, saga_id)]
    for entry, query_id in zip(events, ledger_queries, strict=True):
        fields = metadata(entry)
        assert (fields["outcome"], fields["attempt"]) == ("succeeded", 1)
        assert fields["trino_query_id"] == query_id
        assert query_id in fields["trino_ui"]
        assert fields["elapsed_seconds"] > 0
        assert entry.level == logging.INFO
        # shown under the step whose failure started the compensation
        assert entry.step_key == "drop_summary"
    summary = metadata(summary_event(dagster_instance, run.run_id, saga_id))
    assert summary["final_state"] == "COMPENSATED"
    assert summary["undone_steps"] == "write_report, create_summary"
    assert summary["rows_removed"] == written
    assert report_rows(backend, DAILY, saga_id) == []


@LOCAL_ONLY
def test_a_failed_undo_is_an_error_event_with_the_trino_error_and_its_retry_follows(
    dagster_instance, backend, ledger
) -> None:
    backend.inject(
        Fault(pattern=STEPS["write_report"], action="error", error_name="PERMISSION_DENIED")
    )
    # the summary's DROP fails once with a connector error, then passes
    backend.inject(
        Fault(
            pattern=STEPS["drop_summary"],
            action="error",
            error_name="HIVE_METASTORE_ERROR",
            error_type="EXTERNAL",
            message="metastore unreachable (injected)",
            times=1,
        )
    )
    run = launch(dagster_instance, DAILY)
    drops = [e for e in undo_events(dagster_instance, run.run_id) if "create_summary" in e.message]
    failed, succeeded = drops
    assert failed.level == logging.ERROR
    fields = metadata(failed)
    assert (fields["outcome"], fields["attempt"]) == ("failed, will retry", 1)
    assert fields["error_name"] == "HIVE_METASTORE_ERROR"
    assert "metastore unreachable (injected)" in fields["error"]
    assert fields["statement_kind"] == "DROP TABLE"
    assert fields["trino_query_id"]
    assert "HIVE_METASTORE_ERROR" in failed.message
    assert succeeded.level == logging.INFO
    assert (metadata(succeeded)["outcome"], metadata(succeeded)["attempt"]) == ("succeeded", 2)


@LOCAL_ONLY
def test_an_undo_that_keeps_failing_ends_with_an_error_summary_naming_the_step(
    dagster_instance, backend, ledger
) -> None:
    fail_write_report_and_every_undo_of_the_summary(backend)
    run = launch(dagster_instance, DAILY)
    backend.proxy.faults.clear()
    saga_id = saga_of(run)
    drops = [e for e in undo_events(dagster_instance, run.run_id) if "create_summary" in e.message]
    assert [metadata(e)["attempt"] for e in drops] == [1, 2, 3, 4]
    assert all(e.level == logging.ERROR for e in drops)
    assert metadata(drops[-1])["outcome"] == "failed"
    summary = summary_event(dagster_instance, run.run_id, saga_id)
    assert summary.level == logging.ERROR
    assert metadata(summary)["final_state"] == "FAILED_NEEDS_MANUAL"
    assert metadata(summary)["steps_not_undone"] == "create_summary"
    assert metadata(summary)["failed_undo_attempts"] == 4
    # the summary table is left for the manual compensation
    assert len(scratch_tables(backend, saga_id)) == 1


@LOCAL_ONLY
def test_a_compensate_saga_run_logs_its_undos_carries_the_summary_and_is_linked_from_the_run(
    dagster_instance, backend, ledger
) -> None:
    # a saga whose undo kept failing (FAILED_NEEDS_MANUAL), compensated by hand once the cause is
    # gone, as the runbook says
    fail_write_report_and_every_undo_of_the_summary(backend)
    original = launch(dagster_instance, DAILY)
    backend.proxy.faults.clear()
    saga_id = saga_of(original)
    job = dg.build_reconstructable_job(
        "report_pipeline.definitions", "report_job", reconstructable_args=("compensate_saga",)
    )
    config = {"ops": {"compensate": {"config": {"saga_id": saga_id, "reason": "manual retry"}}}}
    with dg.execute_job(job, instance=dagster_instance, run_config=config) as result:
        compensation_run = result.run_id
        assert result.success
    assert ledger.get_saga(saga_id).state == SagaState.COMPENSATED
    (event,) = undo_events(dagster_instance, compensation_run)
    fields = metadata(event)
    assert (fields["step"], fields["statement_kind"], fields["outcome"]) == (
        "create_summary",
        "DROP TABLE",
        "succeeded",
    )
    assert fields["trino_query_id"] == undo_attempts(ledger, saga_id)[-1].query_id
    (output,) = step_events(dagster_instance, compensation_run, dg.DagsterEventType.STEP_OUTPUT)
    summary = {
        key: value.value for key, value in output.dagster_event.step_output_data.metadata.items()
    }
    assert summary["final_state"] == "COMPENSATED"
    assert summary["undone_steps"] == "create_summary"
    assert summary["compensated_run"] == original.run_id
    # the original run points at the run that finished its compensation
    assert dagster_instance.get_run_by_id(original.run_id).tags[COMPENSATION_RUN_TAG] == (
        compensation_run
    )
    (link,) = [
        e
        for e in step_events(dagster_instance, original.run_id, dg.DagsterEventType.ENGINE_EVENT)
        if e.message.startswith("saga compensated by run")
    ]
    assert metadata(link)["compensation_run"] == compensation_run
    assert scratch_tables(backend, saga_id) == []


RUN_IN_A_PROCESS = """
import json, sys
import dagster as dg
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.orchestration.conftest import postgres_storage

storage = postgres_storage(json.loads(sys.argv[1]))
with dg.instance_for_test(overrides={"storage": storage}) as instance:
    job = dg.build_reconstructable_job(
        "report_pipeline.definitions", "report_job", reconstructable_args=(sys.argv[2],)
    )
    config = start_saga_config(json.loads(sys.argv[3]))
    with dg.execute_job(job, instance=instance, run_config=config):
        pass
"""


@LOCAL_ONLY
def test_a_reexecution_taking_over_a_dead_runs_saga_logs_the_undos_it_runs_first(
    dagster_instance, backend, ledger, postgres_database
) -> None:
    # the run's process dies (kill -9) while write_report's statement runs; run monitoring marks
    # the run failed; an engineer re-executes it from failure before any backstop got to it
    with holding(backend, DAILY, "write_report", seconds=60) as running:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-c",
                RUN_IN_A_PROCESS,
                json.dumps(postgres_database),
                DAILY,
                json.dumps(DAILY_PARAMETERS),
            ],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            running()
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
        (dead,) = [
            r
            for r in dagster_instance.get_runs(dg.RunsFilter(job_name=DAILY), limit=5)
            if r.status == dg.DagsterRunStatus.STARTED
        ]
        dagster_instance.report_run_failed(dead)
        saga_id = dead.tags[SAGA_ID_TAG]
        assert ledger.get_saga(saga_id).state == SagaState.RUNNING
        rerun = launch(dagster_instance, DAILY, reexecute_from=dead.run_id)
    assert rerun.status == dg.DagsterRunStatus.SUCCESS
    assert ledger.get_saga(saga_id).state == SagaState.SUCCEEDED
    events = undo_events(dagster_instance, rerun.run_id)
    assert [metadata(e)["step"] for e in events] == ["write_report", "create_summary"]
    assert all(metadata(e)["outcome"] == "succeeded" for e in events)
    assert {e.step_key for e in events} == {"write_report"}
    assert [metadata(e)["trino_query_id"] for e in events] == [
        a.query_id
        for a in undo_attempts(ledger, saga_id)
        if a.status == AttemptStatus.SUCCEEDED and a.run_id == rerun.run_id
    ]
    wait_until(lambda: not backend.running_queries(STEPS["write_report"]), timeout=30)
