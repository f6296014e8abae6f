"""Structured logs: every saga event carries its context; transitions say old -> new; no secrets."""

from __future__ import annotations

import io
import json
import sys

import structlog
from structlog.testing import capture_logs

from report_pipeline.observability import logging as project_logging
from report_pipeline.saga import FailureKind
from report_pipeline_tests.saga.conftest import ScriptedRunner, coordinator, permanent


def test_step_events_carry_saga_run_report_step_attempt_and_query(ledger) -> None:
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=ScriptedRunner())
    with capture_logs() as logs:
        saga.start({})
        saga.execute_step("create_temp", 2)
    succeeded = next(e for e in logs if e["event"] == "step succeeded")
    assert {
        k: succeeded[k] for k in ("saga_id", "run_id", "report", "step", "attempt", "query_id")
    } == {
        "saga_id": "saga-1",
        "run_id": "run-1",
        "report": "chain",
        "step": "create_temp",
        "attempt": 2,
        "query_id": "q-create_temp",
    }


def test_every_transition_is_logged_old_to_new(ledger) -> None:
    runner = ScriptedRunner(action_failures={"write_report": [permanent()]})
    saga = coordinator(ledger).saga("saga-1", run_id="run-1", runner=runner)
    with capture_logs() as logs:
        saga.start({})
        saga.execute_step("create_temp")
        try:
            saga.execute_step("write_report")
        except Exception:
            saga.compensate(FailureKind.STEP_FAILED, failed_step="write_report")
    transitions = [
        (e["old_state"], e["new_state"]) for e in logs if e["event"] == "saga transition"
    ]
    assert transitions == [
        (None, "RUNNING"),
        ("RUNNING", "FAILED"),
        ("FAILED", "COMPENSATING"),
        ("COMPENSATING", "COMPENSATED"),
    ]


def test_json_lines_and_secret_redaction(monkeypatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(project_logging, "_configured", False)
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        project_logging.configure_logging("json")
        structlog.get_logger("t").info(
            "connecting", saga_id="s", trino_password="hunter2", ledger_url="postgresql://u:pw@h/db"
        )
        line = json.loads(stream.getvalue().strip().splitlines()[-1])
    finally:
        structlog.reset_defaults()
        monkeypatch.setattr(project_logging, "_configured", False)
    assert line["event"] == "connecting" and line["saga_id"] == "s" and line["level"] == "info"
    assert line["trino_password"] == "***" and line["ledger_url"] == "***"
    assert "hunter2" not in stream.getvalue() and "pw@" not in stream.getvalue()
