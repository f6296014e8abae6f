"""Alerts: one per saga outcome, delivered to a real local HTTP receiver, retried, deduplicated."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from report_pipeline import settings
from report_pipeline.alerting.alerts import AlertKind
from report_pipeline.alerting.delivery import deliver_alerts
from report_pipeline.alerting.outbox import AlertOutbox
from report_pipeline.orchestration.alerting import AlertsResource, build_alert_sensor, queue_alerts
from report_pipeline.orchestration.resources import LedgerResource
from report_pipeline.saga import FailureKind, SagaState
from report_pipeline.storage.schema import alerts as alerts_table
from report_pipeline.storage.schema import sagas
from report_pipeline_tests.builders import add_backlog, move_saga, saga_in, start_saga_config
from report_pipeline_tests.conftest import wait_until
from report_pipeline_tests.orchestration.conftest import (
    DAILY_PARAMETERS,
    PARAMETERS,
    REPORTS,
    STEP_STATEMENTS,
    launch,
)
from report_pipeline_tests.orchestration.receiver import Receiver

WEBHOOK_ENV = settings.ALERT_WEBHOOK_URL.name  # read when a tick posts, so tests may set it


@pytest.fixture
def receiver(monkeypatch) -> Iterator[Receiver]:
    receiver = Receiver()
    monkeypatch.setenv(WEBHOOK_ENV, receiver.url)
    yield receiver
    receiver.stop()


def evaluate(instance, pipeline_env, fmt: str = "json") -> str | None:
    """One tick of a freshly built sensor (as after a daemon restart: no state but the ledger)."""
    resources = {
        "ledger": LedgerResource(url=pipeline_env["REPORT_PIPELINE_LEDGER_URL"]),
        "alerts": AlertsResource(format=fmt),
    }
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        return build_alert_sensor(REPORTS).evaluate_tick(context).skip_message


@pytest.fixture(scope="module")
def compensated_run(dagster_instance, local_trino) -> str:
    from report_pipeline.local_trino import Fault

    local_trino.inject(
        Fault(
            pattern=STEP_STATEMENTS["daily_country_report"]["write_report"],
            action="error",
            error_name="PERMISSION_DENIED",
            message="Access Denied (injected)",
        )
    )
    return launch(dagster_instance, "daily_country_report").run_id


def test_compensated_saga_alerts_once_with_its_context(
    dagster_instance, pipeline_env, receiver, compensated_run
) -> None:
    evaluate(dagster_instance, pipeline_env)
    [message] = receiver.about(compensated_run)
    assert message["kind"] == AlertKind.RUN_FAILED and message["severity"] == "warning"
    assert message["report"] == "daily_country_report" and message["saga_state"] == "COMPENSATED"
    assert message["failed_step"] == "write_report" and "Access Denied" in message["error"]
    assert message["parameters"] == DAILY_PARAMETERS and message["trigger"] == "manual"
    assert message["compensation"] == "undone: write_report, create_summary"
    # the saga's id is its root run's id; its own run compensated it: no compensation run
    assert message["links"] == {
        "run": f"http://127.0.0.1:3000/runs/{compensated_run}",
        "compensation_run": None,
        "dashboard": "http://127.0.0.1:3001/d/report-pipeline/"
        f"?var-saga_id={compensated_run}&var-report=daily_country_report",
        "logs": message["links"]["logs"],
    }
    assert message["links"]["logs"].startswith("http://127.0.0.1:3001/explore?schemaVersion=1&")
    evaluate(dagster_instance, pipeline_env)  # a later tick, and a "restarted" sensor: nothing new
    assert len(receiver.about(compensated_run)) == 1


def test_failed_delivery_is_retried_with_backoff(
    dagster_instance, pipeline_env, receiver, ledger
) -> None:
    saga_id = saga_in(
        ledger,
        SagaState.COMPENSATED,
        saga_id=f"alert-retry-{uuid.uuid4()}",
        parameters=DAILY_PARAMETERS,
        stopped_by=FailureKind.TIMED_OUT,
        failed_step="create_summary",
    )
    receiver.refuse = 100
    evaluate(dagster_instance, pipeline_env)
    outbox = AlertOutbox(ledger.engine)
    [row] = outbox.alerts(saga_id)
    assert (row.status, row.attempts, row.last_error) == (
        "pending",
        1,
        "webhook answered HTTP 503",
    )
    assert "secret-token" not in (row.last_error or "")
    receiver.refuse = 0
    with ledger.engine.begin() as connection:  # the backoff has elapsed
        connection.execute(
            alerts_table.update()
            .where(alerts_table.c.alert_key == row.key)
            .values(next_attempt_at=dt.datetime.now(dt.UTC))
        )
    evaluate(dagster_instance, pipeline_env)
    [message] = receiver.about(saga_id)
    assert message["kind"] == AlertKind.TIMED_OUT
    assert outbox.alerts(saga_id)[0].status == "delivered"


def test_failed_needs_manual_is_critical_and_slack_formatted(
    dagster_instance, pipeline_env, receiver, ledger
) -> None:
    saga_id = saga_in(
        ledger,
        SagaState.FAILED_NEEDS_MANUAL,
        saga_id=f"alert-manual-{uuid.uuid4()}",
        parameters=DAILY_PARAMETERS,
        failed_step="write_report",
        error="PERMISSION_DENIED: no",
    )
    evaluate(dagster_instance, pipeline_env, fmt="slack")
    [message] = receiver.about(saga_id)
    assert message["text"].startswith(":rotating_light: daily_country_report: FAILED_NEEDS_MANUAL")
    assert any(block["type"] == "section" and "fields" in block for block in message["blocks"])


def test_saga_running_past_its_sla_alerts_as_overdue(
    dagster_instance, pipeline_env, receiver, ledger
) -> None:
    saga_id = saga_in(
        ledger,
        SagaState.RUNNING,
        saga_id=f"alert-overdue-{uuid.uuid4()}",
        parameters=DAILY_PARAMETERS,
    )
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(
        minutes=REPORTS["daily_country_report"].sla_minutes + 5
    )
    with ledger.engine.begin() as connection:
        connection.execute(
            sa.update(sagas).where(sagas.c.saga_id == saga_id).values(updated_at=long_ago)
        )
    evaluate(dagster_instance, pipeline_env)
    [message] = receiver.about(saga_id)
    assert (
        message["kind"] == AlertKind.OVERDUE and "running for more than 60 min" in message["error"]
    )
    move_saga(ledger, saga_id, SagaState.FAILED)  # stop it being overdue


def test_run_that_failed_before_its_saga_alerts(dagster_instance, pipeline_env, receiver) -> None:
    run = launch(dagster_instance, "daily_country_report", {**DAILY_PARAMETERS, "min_events": -1})
    evaluate(dagster_instance, pipeline_env)
    [message] = receiver.about(run.run_id)
    assert message["kind"] == AlertKind.RUN_FAILED_BEFORE_SAGA and "min_events" in message["error"]
    assert message["links"] == {
        "run": f"http://127.0.0.1:3000/runs/{run.run_id}",
        "compensation_run": None,
        "dashboard": None,
        "logs": None,
    }


def test_without_a_webhook_the_alert_is_logged(
    dagster_instance, pipeline_env, ledger, monkeypatch
) -> None:
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    saga_id = saga_in(
        ledger,
        SagaState.COMPENSATED,
        saga_id=f"alert-logged-{uuid.uuid4()}",
        parameters=DAILY_PARAMETERS,
        stopped_by=FailureKind.CANCELLED,
    )
    evaluate(dagster_instance, pipeline_env)
    [row] = AlertOutbox(ledger.engine).alerts(saga_id)
    assert row.status == "logged" and row.kind == AlertKind.RUN_CANCELED


def test_daemon_delivers_one_alert_even_across_a_daemon_restart(
    dagster_stack, stack_alerts, local_trino
) -> None:
    from report_pipeline.local_trino import Fault

    local_trino.inject(
        Fault(
            pattern=STEP_STATEMENTS["daily_country_report"]["write_report"],
            action="error",
            error_name="PERMISSION_DENIED",
        )
    )
    run_id = dagster_stack.launch(
        "daily_country_report", start_saga_config(PARAMETERS["daily_country_report"])
    )
    assert dagster_stack.wait_for_run(run_id) == "FAILURE"
    wait_until(lambda: stack_alerts.about(run_id), timeout=90, interval=0.5)
    assert [m["kind"] for m in stack_alerts.about(run_id)] == ["run_failed"]
    dagster_stack.restart_daemon()
    dagster_stack.wait_for_ticks("saga_alert_sensor", count=2, since=time.time())
    assert len(stack_alerts.about(run_id)) == 1


def test_a_backlog_larger_than_any_page_is_alerted_in_full_and_then_owes_nothing(
    dagster_instance, backlog_ledger
) -> None:
    backlog = add_backlog(backlog_ledger, 1500, SagaState.COMPENSATED, "a-backfill-run")
    resources = {
        "ledger": LedgerResource(
            url=backlog_ledger.engine.url.render_as_string(hide_password=False)
        ),
        "alerts": AlertsResource(),  # queueing only: nothing is posted
    }
    with dg.build_sensor_context(instance=dagster_instance, resources=resources) as context:
        queue_alerts(
            context,
            REPORTS,
            backlog_ledger,
            context.resources.alerts,
            dt.datetime.now(dt.UTC),
        )
    # (runs of other tests that failed before a saga alert too: this ledger has no saga for them)
    outbox = AlertOutbox(backlog_ledger.engine)
    assert [a.saga_id for a in outbox.alerts() if a.saga_id] == backlog
    assert list(outbox.sagas_without_alert([SagaState.COMPENSATED])) == []


def test_alerts_that_do_not_fit_in_the_ticks_budget_wait_for_the_next_tick(
    dagster_instance, backlog_ledger, receiver
) -> None:
    backlog = add_backlog(backlog_ledger, 3, SagaState.COMPENSATED, "a-run")
    alerts = AlertsResource(format="json")
    with dg.build_sensor_context(instance=dagster_instance) as context:
        queue_alerts(context, REPORTS, backlog_ledger, alerts, dt.datetime.now(dt.UTC))
    outbox = AlertOutbox(backlog_ledger.engine)
    queued = len(outbox.alerts())  # (with the alerts of other tests' runs that failed early)
    assert deliver_alerts(outbox, alerts.webhook(), budget_seconds=0)["deferred"] == queued
    assert {(a.status, a.attempts) for a in outbox.alerts()} == {("pending", 0)}
    assert deliver_alerts(outbox, alerts.webhook())["delivered"] == queued
    assert set(backlog) <= {message["saga_id"] for message in receiver.received}
