"""`report-pipeline status`: what an engineer sees for a saga in each state, and recent sagas."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading

import pytest

from report_pipeline.observability.status import describe_recent, describe_saga, show_status
from report_pipeline.saga import (
    AttemptKind,
    AttemptStatus,
    FailureKind,
    PermanentStepError,
    SagaState,
    StepProgress,
)
from report_pipeline_tests.builders import CHAIN_PARAMETERS, chain_saga_in
from report_pipeline_tests.saga.conftest import ScriptedRunner, coordinator

STEPS = ("create_temp", "write_report", "drop_temp")


def section(text: str, title: str) -> str:
    return text.split(f"\n{title}:\n")[1].split("\n\n")[0]


def step_line(text: str, step: str) -> str:
    [line] = [line for line in section(text, "steps").splitlines() if line.startswith(step + " ")]
    return line


def test_succeeded_saga_shows_every_step_succeeded(ledger) -> None:
    chain_saga_in(ledger, "s1", SagaState.SUCCEEDED)
    text = describe_saga(ledger, "s1", STEPS)
    assert "state SUCCEEDED" in text and "took" in text
    for step in STEPS:
        assert "succeeded" in step_line(text, step)
    assert "compensations:" not in text


def test_running_saga_shows_the_running_step_with_its_trino_progress(ledger) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    ledger.record_progress("r1", "write_report", StepProgress("RUNNING", 42.0, 12_345, 1_000_000))
    text = describe_saga(ledger, "r1", STEPS)
    assert "state RUNNING" in text and "running for" in text
    assert "succeeded" in step_line(text, "create_temp")
    assert "running" in step_line(text, "write_report") and "RUNNING 42% 12,345 rows" in step_line(
        text, "write_report"
    )
    assert "pending" in step_line(text, "drop_temp")


def test_a_step_submitted_but_not_yet_reporting_says_so(ledger) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    assert "submitted" in step_line(describe_saga(ledger, "r1", STEPS), "write_report")


@pytest.mark.parametrize(
    "state", [SagaState.FAILED, SagaState.TIMED_OUT, SagaState.CANCELLED, SagaState.COMPENSATING]
)
def test_stopped_saga_awaiting_compensation_names_the_failed_step(ledger, state) -> None:
    chain_saga_in(ledger, "x1", state)
    text = describe_saga(ledger, "x1", STEPS)
    assert f"state {state.value}" in text
    assert "failed step write_report" in text
    assert "succeeded" in step_line(text, "create_temp")  # not yet undone


def test_saga_of_a_stopped_run_lists_the_steps_it_interrupted(ledger) -> None:
    saga = coordinator(ledger).saga("t1", run_id="run-t1", runner=ScriptedRunner())
    saga.start(CHAIN_PARAMETERS)
    ledger.start_attempt("t1", "create_temp", AttemptKind.ACTION, "run-t1", 1, require_running=True)
    saga.stop(FailureKind.CANCELLED, interrupted=["create_temp"], error="run terminated")
    text = describe_saga(ledger, "t1", STEPS)
    assert "failed step create_temp (cancelled): run terminated" in text
    assert "interrupted steps create_temp" in text


def test_compensated_saga_shows_each_undo_in_order(ledger) -> None:
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    text = describe_saga(ledger, "c1", STEPS)
    assert "state COMPENSATED" in text
    assert "compensated" in step_line(text, "create_temp")
    assert "TABLE_NOT_FOUND" in step_line(text, "write_report")
    undos = section(text, "compensations")
    assert undos.index("write_report") < undos.index("create_temp")
    transitions = section(text, "transitions").splitlines()[2:]
    assert [row.split()[3] for row in transitions] == [
        "RUNNING",
        "FAILED",
        "COMPENSATING",
        "COMPENSATED",
    ]


def test_failed_needs_manual_saga_points_at_the_failed_undo_and_its_table(ledger) -> None:
    chain_saga_in(ledger, "m1", SagaState.FAILED_NEEDS_MANUAL)
    text = describe_saga(ledger, "m1", STEPS)
    assert "state FAILED_NEEDS_MANUAL" in text and "NEEDS A PERSON" in text
    assert "undo failed" in step_line(text, "create_temp")
    assert "scratch.saga_temp" in text.split("tables")[1]
    assert "HIVE_METASTORE_ERROR" not in step_line(text, "write_report")
    undos = section(text, "compensations").splitlines()[2:]
    assert [row.split()[3] for row in undos if row.startswith("create_temp")] == [
        "FAILED"
    ] * 3  # every retry


def test_unknown_saga_is_reported(ledger) -> None:
    assert describe_saga(ledger, "nope") == "no saga nope"
    assert show_status(ledger, "nope", out=io.StringIO()) == 1


def test_recent_sagas_are_listed_newest_first_with_their_state(ledger) -> None:
    for saga_id, state in [
        ("a", SagaState.SUCCEEDED),
        ("b", SagaState.COMPENSATED),
        ("c", SagaState.FAILED_NEEDS_MANUAL),
        ("d", SagaState.RUNNING),
    ]:
        chain_saga_in(ledger, saga_id, state)
    rows = describe_recent(ledger).splitlines()[2:]
    assert [(row.split()[0], row.split()[2]) for row in rows] == [
        ("d", "RUNNING"),
        ("c", "FAILED_NEEDS_MANUAL"),
        ("b", "COMPENSATED"),
        ("a", "SUCCEEDED"),
    ]
    assert "write_report" in rows[0]  # the step a running saga is on
    assert "write_report: step_failed" in rows[2]


def test_recent_sagas_can_be_filtered_by_state(ledger) -> None:
    chain_saga_in(ledger, "a", SagaState.SUCCEEDED)
    chain_saga_in(ledger, "c", SagaState.FAILED_NEEDS_MANUAL)
    rows = describe_recent(ledger, states=[SagaState.FAILED_NEEDS_MANUAL]).splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["c"]


@pytest.mark.parametrize(
    ("state", "code"),
    [(SagaState.SUCCEEDED, 0), (SagaState.COMPENSATED, 1), (SagaState.FAILED_NEEDS_MANUAL, 2)],
)
def test_follow_exits_with_the_sagas_outcome(ledger, state, code) -> None:
    chain_saga_in(ledger, "x", state)
    assert show_status(ledger, "x", follow=True, interval=0.05, out=io.StringIO()) == code


def test_follow_redraws_as_the_saga_moves_until_it_ends(ledger) -> None:
    chain_saga_in(ledger, "r1", SagaState.RUNNING)
    out = io.StringIO()

    def finish() -> None:
        ledger.record_progress("r1", "write_report", StepProgress("RUNNING", 80.0, 5, 5))
        threading.Event().wait(0.3)
        ledger.transition("r1", {SagaState.RUNNING}, SagaState.SUCCEEDED, "all steps succeeded")

    worker = threading.Thread(target=finish)
    worker.start()
    assert show_status(ledger, "r1", follow=True, interval=0.05, out=out) == 0
    worker.join()
    frames = [frame for frame in out.getvalue().split("\n\n\n") if frame.startswith("saga ")]
    assert "state RUNNING" in frames[0] and "state SUCCEEDED" in frames[-1]
    assert "RUNNING 80%" in out.getvalue()


@pytest.mark.parametrize("ledger", ["postgresql"], indirect=True)
def test_the_command_reads_the_ledger_named_in_the_environment(ledger) -> None:
    chain_saga_in(ledger, "c1", SagaState.COMPENSATED)
    env = {
        **os.environ,
        "REPORT_PIPELINE_LEDGER_URL": ledger.engine.url.render_as_string(hide_password=False),
    }
    listing = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    one = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "status", "c1", "--follow"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listing.returncode == 0 and "c1" in listing.stdout and "COMPENSATED" in listing.stdout
    assert one.returncode == 1 and "state COMPENSATED" in one.stdout


def test_the_command_without_a_ledger_url_says_what_to_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "REPORT_PIPELINE_LEDGER_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "REPORT_PIPELINE_LEDGER_URL" in result.stderr


# every control character but the newline that ends each line of the view: C0, DEL, C1
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")
EVIL_ID = "evil\x1b[31m"
# a reason that would add a row of its own to the transitions table, printed as it is
FORGED_REASON = "stopped\r\x1b[K\n2026-01-01 00:00:00.000Z  FAILED   SUCCEEDED  all\tgood"


def make_evil_saga(ledger) -> None:
    """A saga whose every string carries terminal control sequences, some over several lines."""
    ledger.create_saga(
        EVIL_ID,
        "chain",
        {"day": "2026\x1b[5m-01-01"},
        "run\x07",
        trigger="manual\x1b]0;pwned\x07",
        partition="p\x9b2J",
    )
    for step in ("create_temp", "odd\x1b[1mstep"):
        attempt = ledger.start_attempt(
            EVIL_ID,
            step,
            AttemptKind.ACTION,
            "run\x07",
            1,
            require_running=True,
            created_tables=["scratch.t\x1b[8m"],
        )
        ledger.finish_attempt(
            EVIL_ID,
            attempt,
            AttemptStatus.FAILED,
            error=PermanentStepError("x", error_name="BAD\x1b[31m\x7f", query_id="q\x1b[A"),
        )
    ledger.transition(
        EVIL_ID,
        {SagaState.RUNNING},
        SagaState.FAILED,
        FORGED_REASON,
        failed_step="create_temp\x1b[1m",
        failure_kind="step_failed",
        error="first line\n\x1b]0;title\x07second line\x1b[0m",
    )


def test_control_characters_in_a_sagas_strings_are_shown_as_escapes(ledger) -> None:
    make_evil_saga(ledger)
    text = describe_saga(ledger, EVIL_ID, STEPS)
    assert not CONTROL.search(text)
    for shown in (
        "saga evil\\x1b[31m",
        "day=2026\\x1b[5m-01-01",
        "manual\\x1b]0;pwned\\x07",
        "p\\x9b2J",
        "odd\\x1b[1mstep",
        "BAD\\x1b[31m\\x7f",
        "stopped\\r\\x1b[K\\n2026-01-01",
        "first line\\n\\x1b]0;title\\x07second line\\x1b[0m",
        "scratch.t\\x1b[8m",
        "q\\x1b[A",
    ):
        assert shown in text


def test_a_multi_line_value_stays_on_its_own_line_of_the_view(ledger) -> None:
    make_evil_saga(ledger)
    text = describe_saga(ledger, EVIL_ID, STEPS)
    assert [row.split()[3] for row in section(text, "transitions").splitlines()[2:]] == [
        "RUNNING",
        "FAILED",
    ]
    assert not [
        line
        for line in text.splitlines()
        if line.startswith(("2026-01-01 00:00:00.000Z", "second line"))
    ]


def test_control_characters_in_the_recent_sagas_are_shown_as_escapes(ledger) -> None:
    make_evil_saga(ledger)
    text = describe_recent(ledger)
    assert not CONTROL.search(text)
    assert "evil\\x1b[31m" in text and "create_temp\\x1b[1m: step_failed" in text
