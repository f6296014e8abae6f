"""Where an alert leads: the run, the compensation run, the dashboard filtered to the saga, and the
saga's logs in Grafana Explore; each link exact, every saga value in it encoded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from report_pipeline.alerting.alerts import Alert, AlertLinks, LinkTargets, outcome_alert
from report_pipeline.alerting.delivery import (
    FailedRun,
    queue_run_failure_alerts,
    queue_saga_alerts,
)
from report_pipeline.alerting.outbox import AlertOutbox
from report_pipeline.alerting.payloads import json_payload, slack_payload
from report_pipeline.observability import links
from report_pipeline.saga import RunKind, SagaState
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import SagaRecord
from report_pipeline_tests.builders import move_saga, saga_in
from report_pipeline_tests.saga.conftest import isolated_schema_url

TARGETS = LinkTargets(
    dagster_ui_url="https://dagster.example/", grafana_url="https://grafana.example/"
)
SAGA_ID = "6f1c2a9e-0b7d-4c1e-9a53-2f8d1e4b7c60"
STARTED = dt.datetime(2026, 11, 23, 6, 30, tzinfo=dt.UTC)
HOSTILE = 'x" | line_format "{{.}}" & <b>#frag|y\\z'  # ends strings, queries, links if pasted in

RUN_URL = "https://dagster.example/runs/run-1"
DASHBOARD_URL = (
    "https://grafana.example/d/report-pipeline/"
    "?var-saga_id=6f1c2a9e-0b7d-4c1e-9a53-2f8d1e4b7c60&var-report=daily_country_report"
)
LOGS_URL = (
    "https://grafana.example/explore?schemaVersion=1&panes="
    "%7B%22saga%22%3A%7B%22datasource%22%3A%22loki%22%2C%22queries%22%3A%5B%7B%22refId%22%3A%22A"
    "%22%2C%22datasource%22%3A%7B%22type%22%3A%22loki%22%2C%22uid%22%3A%22loki%22%7D%2C%22expr"
    "%22%3A%22%7Bservice%3D~%5C%22code-location%7Cdagster-webserver%7Cdagster-daemon%5C%22%7D%20"
    "%7C%20json%20%7C%20saga_id%3D%5C%226f1c2a9e-0b7d-4c1e-9a53-2f8d1e4b7c60%5C%22%22%2C%22"
    "queryType%22%3A%22range%22%7D%5D%2C%22range%22%3A%7B%22from%22%3A%221795415100000%22%2C"
    "%22to%22%3A%22now%22%7D%7D%7D&orgId=1"
)


def sample_saga(**changes: Any) -> SagaRecord:
    """A daily_country_report saga compensated after its write_report step failed."""
    saga = SagaRecord(
        SAGA_ID,
        "daily_country_report",
        {"start_date": "2026-11-22"},
        SagaState.COMPENSATED,
        STARTED,
        STARTED + dt.timedelta(minutes=20),
        run_id="run-1",
        failed_step="write_report",
        error="PERMISSION_DENIED: no",
    )
    return dataclasses.replace(saga, **changes)


def explore_pane(url: str) -> dict:
    """The one pane of a Grafana Explore URL, decoded."""
    [panes] = parse_qs(urlsplit(url).query)["panes"]
    [pane] = json.loads(panes).values()
    return pane


# --- each link, exactly ---------------------------------------------------------------------------


def test_run_link_is_the_run_page_in_the_dagster_ui() -> None:
    assert TARGETS.for_saga(sample_saga(), []).run == RUN_URL


def test_dashboard_link_filters_the_dashboard_to_the_saga_and_its_report() -> None:
    assert TARGETS.for_saga(sample_saga(), []).dashboard == DASHBOARD_URL


def test_logs_link_opens_explore_on_loki_from_five_minutes_before_the_saga_started() -> None:
    assert TARGETS.for_saga(sample_saga(), []).logs == LOGS_URL


def test_logs_link_decodes_to_the_sagas_logql_on_the_loki_datasource() -> None:
    pane = explore_pane(TARGETS.for_saga(sample_saga(), []).logs or "")
    assert pane["datasource"] == links.LOKI_DATASOURCE_UID
    [query] = pane["queries"]
    assert query["datasource"] == {"type": "loki", "uid": links.LOKI_DATASOURCE_UID}
    assert query["expr"] == (
        '{service=~"code-location|dagster-webserver|dagster-daemon"} | json'
        ' | saga_id="6f1c2a9e-0b7d-4c1e-9a53-2f8d1e4b7c60"'
    )
    assert pane["range"] == {"from": str(int(STARTED.timestamp() * 1000) - 300_000), "to": "now"}


def test_logql_escapes_quotes_and_backslashes_of_the_saga_id() -> None:
    assert links.saga_logs_query('a"b\\c') == (
        f'{links.LOG_STREAM_SELECTOR} | json | saga_id="a\\"b\\\\c"'
    )


def test_a_saga_id_that_would_break_the_logql_or_the_url_arrives_intact() -> None:
    url = TARGETS.for_saga(sample_saga(saga_id=HOSTILE), []).logs or ""
    assert urlsplit(url).fragment == "" and set(parse_qs(urlsplit(url).query)) == {
        "schemaVersion",
        "panes",
        "orgId",
    }
    [query] = explore_pane(url)["queries"]
    assert query["expr"] == (
        f"{links.LOG_STREAM_SELECTOR} | json | saga_id="
        '"x\\" | line_format \\"{{.}}\\" & <b>#frag|y\\\\z"'
    )


def test_dashboard_link_percent_encodes_the_saga_and_the_report() -> None:
    url = TARGETS.for_saga(sample_saga(saga_id=HOSTILE, saga_name="a&b c"), []).dashboard or ""
    assert url.startswith("https://grafana.example/d/report-pipeline/?")
    assert not set(urlsplit(url).query) & set(' "<>#|\\{}')
    assert parse_qs(urlsplit(url).query) == {"var-saga_id": [HOSTILE], "var-report": ["a&b c"]}


def test_alert_of_a_run_that_failed_before_its_saga_links_only_the_run() -> None:
    assert TARGETS.for_run("run-1") == AlertLinks(run=RUN_URL)


# --- the compensation run, from the ledger on PostgreSQL -----------------------------------------


@pytest.fixture
def pg_ledger(postgres_url: str) -> Iterator[SqlLedger]:
    ledger = SqlLedger(isolated_schema_url(postgres_url))
    ledger.migrate()
    yield ledger
    ledger.close()


def queued_links(ledger: SqlLedger, saga_id: str) -> AlertLinks:
    outbox = AlertOutbox(ledger.engine)
    queue_saga_alerts(ledger, outbox, {}, TARGETS, dt.datetime.now(dt.UTC))
    [queued] = outbox.alerts(saga_id)
    return queued.alert.links


def test_alert_links_the_compensation_run_that_undid_the_saga(pg_ledger: SqlLedger) -> None:
    saga_id = saga_in(pg_ledger, SagaState.CANCELLED, run_id="run-1")
    pg_ledger.link_run(saga_id, "compensation-run-1", "run-1", RunKind.COMPENSATION)
    move_saga(pg_ledger, saga_id, SagaState.COMPENSATED)
    assert queued_links(pg_ledger, saga_id).compensation_run == (
        "https://dagster.example/runs/compensation-run-1"
    )


def test_alert_of_a_saga_compensated_by_its_own_run_has_no_compensation_run_link(
    pg_ledger: SqlLedger,
) -> None:
    saga_id = saga_in(pg_ledger, SagaState.COMPENSATED, run_id="run-1")
    saga = pg_ledger.get_saga(saga_id)
    assert saga is not None
    assert queued_links(pg_ledger, saga_id) == AlertLinks(
        run=RUN_URL,
        compensation_run=None,
        dashboard=links.dashboard_url(
            "https://grafana.example", saga_id=saga_id, report="daily_country_report"
        ),
        logs=links.saga_logs_url("https://grafana.example", saga_id, saga.created_at),
    )


def test_compensation_run_of_an_earlier_execution_is_not_linked(pg_ledger: SqlLedger) -> None:
    saga_id = saga_in(pg_ledger, SagaState.CANCELLED, run_id="run-1")
    pg_ledger.link_run(saga_id, "compensation-run-1", "run-1", RunKind.COMPENSATION)
    move_saga(pg_ledger, saga_id, SagaState.COMPENSATED)
    pg_ledger.begin_rerun(saga_id, "rerun-1", "run-1")  # re-executed: a new execution
    move_saga(pg_ledger, saga_id, SagaState.COMPENSATED)  # which compensated itself
    alert_links = queued_links(pg_ledger, saga_id)
    assert alert_links.run == "https://dagster.example/runs/rerun-1"
    assert alert_links.compensation_run is None


def test_alert_of_a_run_that_failed_before_its_saga_carries_only_the_run_link(
    pg_ledger: SqlLedger,
) -> None:
    outbox = AlertOutbox(pg_ledger.engine)
    failed = FailedRun("daily_country_report", "run-1", "run-1", "FAILURE", {}, "manual")
    queue_run_failure_alerts(pg_ledger, outbox, [failed], lambda run_id: "bad", TARGETS)
    [queued] = outbox.alerts()
    assert queued.alert.links == AlertLinks(run=RUN_URL)


# --- in the payloads ------------------------------------------------------------------------------


def sample_alert() -> Alert:
    alert = outcome_alert(
        sample_saga(),
        [],
        AlertLinks(
            run=RUN_URL,
            compensation_run="https://dagster.example/runs/compensation-run-1",
            dashboard=DASHBOARD_URL,
            logs=LOGS_URL,
        ),
    )
    assert alert is not None
    return alert


def test_json_payload_carries_every_link() -> None:
    assert json_payload(sample_alert())["links"] == {
        "run": RUN_URL,
        "compensation_run": "https://dagster.example/runs/compensation-run-1",
        "dashboard": DASHBOARD_URL,
        "logs": LOGS_URL,
    }


def test_slack_message_shows_the_links_as_mrkdwn_links() -> None:
    [links_text] = [
        block["text"]["text"]
        for block in slack_payload(sample_alert())["blocks"]
        if block.get("text", {}).get("text", "").startswith("*Links*")
    ]
    assert links_text == (
        f"*Links*\n<{RUN_URL}|Run>"
        " · <https://dagster.example/runs/compensation-run-1|Compensation run>"
        f" · <{DASHBOARD_URL.replace('&', '&amp;')}|Dashboard>"
        f" · <{LOGS_URL.replace('&', '&amp;')}|Logs>"
    )


def test_slack_message_leaves_out_links_that_do_not_exist() -> None:
    alert = outcome_alert(sample_saga(), [], AlertLinks(run=RUN_URL))
    assert alert is not None
    texts = [block.get("text", {}).get("text", "") for block in slack_payload(alert)["blocks"]]
    assert f"*Links*\n<{RUN_URL}|Run>" in texts


def test_slack_links_of_a_saga_with_hostile_values_are_our_markup_alone() -> None:
    saga = sample_saga(saga_id=HOSTILE, saga_name="<!channel> & co")
    alert = outcome_alert(saga, [], TARGETS.for_saga(saga, []))
    assert alert is not None
    [links_text] = [
        block["text"]["text"]
        for block in slack_payload(alert)["blocks"]
        if block.get("text", {}).get("text", "").startswith("*Links*")
    ]
    # three links (run, dashboard, logs): three `<`, `|` and `>`, every `&` escaped
    assert [links_text.count(c) for c in "<|>"] == [3, 3, 3]
    assert links_text.count("&") == links_text.count("&amp;")
