"""What an alert says about where a saga stopped."""

from __future__ import annotations

import dataclasses
import datetime as dt

from report_pipeline.alerting.alerts import Alert, AlertKind, AlertLinks, outcome_alert
from report_pipeline.alerting.payloads import json_payload, slack_payload
from report_pipeline.saga import SagaState
from report_pipeline.saga.model import SagaRecord

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)


def terminated_saga() -> SagaRecord:
    return SagaRecord(
        "saga-1",
        "weekly_engagement_report",
        {"week_start": "2026-01-05"},
        SagaState.COMPENSATED,
        NOW,
        NOW,
        run_id="run-1",
        failure_kind="cancelled",
        failed_step="build_activity",
        error="run terminated",
        interrupted_steps=("build_activity", "build_purchases"),
    )


def terminated_saga_alert() -> Alert:
    alert = outcome_alert(terminated_saga(), [], AlertLinks())
    assert alert is not None
    return alert


def test_alert_of_a_stopped_run_names_every_interrupted_step() -> None:
    alert = terminated_saga_alert()
    assert (alert.failed_step, alert.interrupted_steps) == (
        "build_activity",
        ("build_activity", "build_purchases"),
    )
    fields = [
        f["text"] for block in slack_payload(alert)["blocks"] for f in block.get("fields", [])
    ]
    assert "*Interrupted steps*\nbuild_activity, build_purchases" in fields


def test_alert_queued_before_interrupted_steps_existed_still_loads() -> None:
    document = terminated_saga_alert().to_json()
    del document["interrupted_steps"]
    assert Alert.from_json(document).interrupted_steps == ()


def test_alert_queued_under_the_old_name_of_overdue_still_loads() -> None:
    document = {**terminated_saga_alert().to_json(), "kind": "stuck"}
    assert Alert.from_json(document).kind == AlertKind.OVERDUE


def test_alert_queued_before_links_existed_loads_with_its_run_link() -> None:
    document = terminated_saga_alert().to_json()
    del document["links"]
    document["run_url"] = "http://127.0.0.1:3000/runs/run-1"
    assert Alert.from_json(document).links == AlertLinks(run="http://127.0.0.1:3000/runs/run-1")


def test_alert_queued_before_links_existed_without_a_run_loads_with_no_links() -> None:
    document = terminated_saga_alert().to_json()
    del document["links"]
    document["run_url"] = None
    assert Alert.from_json(document).links == AlertLinks()


def test_the_json_payload_keeps_run_url_beside_the_links_for_receivers_of_the_earlier_format() -> (
    None
):
    run = "http://127.0.0.1:3000/runs/run-1"
    alert = dataclasses.replace(terminated_saga_alert(), links=AlertLinks(run=run))
    payload = json_payload(alert)
    assert payload["run_url"] == payload["links"]["run"] == run
