"""Report specs: what loads, what is refused (each with a one-line reason), launch parameters."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import pytest
import yaml

from report_pipeline.reporting import REPORTS_DIR, load_reports
from report_pipeline.reporting.spec import (
    MAX_SPEC_BYTES,
    MAX_SQL_BYTES,
    ParameterError,
    ReportSpecError,
    RetrySpec,
    load_report,
)
from report_pipeline.saga.scratch_names import saga_key

DAILY = REPORTS_DIR / "daily_country_report"


@pytest.fixture
def report_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "daily_country_report"
    shutil.copytree(DAILY, folder)
    return folder


def edit_spec(folder: Path, change) -> None:
    path = folder / "report.yaml"
    document = yaml.safe_load(path.read_text())
    change(document)
    path.write_text(yaml.safe_dump(document))


def test_every_shipped_report_loads() -> None:
    reports = load_reports()
    assert set(reports) == {"daily_country_report", "weekly_engagement_report"}
    weekly = reports["weekly_engagement_report"].saga_definition()
    assert weekly.step("write_report").depends_on == ("build_activity", "build_purchases")


def test_spec_becomes_a_saga_definition() -> None:
    definition = load_report(DAILY).saga_definition()
    assert definition.order() == ["create_summary", "write_report", "drop_summary"]
    assert definition.step("create_summary").created_tables == ("summary",)
    assert definition.step("drop_summary").compensable is False


def test_a_chain_report_runs_in_process_and_a_branching_one_does_not() -> None:
    reports = load_reports()
    assert reports["daily_country_report"].runs_in_process()
    assert not reports["weekly_engagement_report"].runs_in_process()


@pytest.mark.parametrize(
    ("execution", "in_process"), [("in_process", True), ("multiprocess", False)]
)
def test_the_spec_may_choose_the_execution(report_copy: Path, execution, in_process) -> None:
    edit_spec(report_copy, lambda d: d.update(execution=execution))
    assert load_report(report_copy).runs_in_process() is in_process


def test_an_unknown_execution_is_refused(report_copy: Path) -> None:
    edit_spec(report_copy, lambda d: d.update(execution="threads"))
    with pytest.raises(ReportSpecError, match="execution"):
        load_report(report_copy)


def test_a_steps_retries_are_a_retry_policy() -> None:
    policy = RetrySpec(max_retries=2, delay_seconds=0.5, backoff=3).policy()
    # the first try and two retries, waiting delay_seconds * backoff ** retry_number before each
    assert policy.max_attempts == 3
    assert [policy.delay(attempt) for attempt in (1, 2)] == [0.5, 1.5]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["steps"]["write_report"].update(depends_on=["nope"]), "unknown"),
        (lambda d: d["steps"]["create_summary"].update(depends_on=["drop_summary"]), "cycle"),
        (
            lambda d: d["steps"]["create_summary"].update(action="missing.sql"),
            "cannot read missing.sql",
        ),
        (lambda d: d["steps"]["create_summary"].update(creates=["other"]), "undeclared tables"),
        (lambda d: d["parameters"].pop("min_events"), "undeclared parameters :min_events"),
        (lambda d: d.update(tables=[]), "undeclared tables"),
        (
            lambda d: d["steps"]["create_summary"].update(compensation="create_summary.sql"),
            "a compensation is",
        ),
        (lambda d: d["steps"]["create_summary"].update(surprise=1), "surprise"),
        (lambda d: d["parameters"]["min_events"].update(type="float"), "type"),
        (lambda d: d.pop("owner"), "owner"),
    ],
)
def test_invalid_spec_is_refused_with_the_reason(report_copy: Path, change, message: str) -> None:
    edit_spec(report_copy, change)
    with pytest.raises(ReportSpecError, match=message):
        load_report(report_copy)


def test_sql_that_does_not_parse_is_refused(report_copy: Path) -> None:
    (report_copy / "write_report.sql").write_text("INSERT INTO reports.x SELEKT 1")
    with pytest.raises(ReportSpecError, match="not valid Trino SQL"):
        load_report(report_copy)


def test_compensation_without_if_exists_is_refused(report_copy: Path) -> None:
    (report_copy / "drop_summary.sql").write_text("DROP TABLE ${summary}")
    with pytest.raises(ReportSpecError, match="IF EXISTS"):
        load_report(report_copy)


def test_compensation_deleting_other_sagas_rows_is_refused(report_copy: Path) -> None:
    (report_copy / "delete_report_rows.sql").write_text(
        "DELETE FROM reports.daily_country_report WHERE true"
    )
    with pytest.raises(ReportSpecError, match="saga_id = :saga_id"):
        load_report(report_copy)


# (file, SQL, the reason given): undo statements that validated before compensations were parsed
UNSAFE_COMPENSATIONS = {
    "placeholder only in a comment": (
        "drop_summary.sql",
        "DROP TABLE IF EXISTS analytics.x -- ${summary}",
        "may only drop a ${table} scratch table its step creates",
    ),
    "tautological saga key": (
        "delete_report_rows.sql",
        "DELETE FROM reports.daily_country_report WHERE saga_id = saga_id AND :saga_id IS NOT NULL",
        "only this saga's rows",
    ),
    "saga key under an OR": (
        "delete_report_rows.sql",
        "DELETE FROM reports.daily_country_report WHERE saga_id = :saga_id OR true",
        "only this saga's rows",
    ),
    "saga key against another parameter": (
        "delete_report_rows.sql",
        "DELETE FROM reports.daily_country_report WHERE saga_id = :start_date",
        "only this saga's rows",
    ),
    "delete from a table the step does not write": (
        "delete_report_rows.sql",
        "DELETE FROM analytics.events WHERE saga_id = :saga_id",
        "INSERTs INTO",
    ),
    "drop schema": ("drop_summary.sql", "DROP SCHEMA IF EXISTS ${summary}", "drops a SCHEMA"),
    "drop view": ("drop_summary.sql", "DROP VIEW IF EXISTS ${summary}", "drops a VIEW"),
    "drop of a literal table name": (
        "drop_summary.sql",
        "DROP TABLE IF EXISTS lake.scratch.saga_x_summary",
        "may only drop a ${table} scratch table its step creates",
    ),
    "several statements": (
        "drop_summary.sql",
        "DROP TABLE IF EXISTS ${summary}; DROP TABLE analytics.events",
        "exactly one statement",
    ),
}


@pytest.mark.parametrize(
    ("file", "sql", "reason"), UNSAFE_COMPENSATIONS.values(), ids=UNSAFE_COMPENSATIONS
)
def test_unsafe_compensation_is_refused_naming_report_step_file_and_reason(
    report_copy: Path, file: str, sql: str, reason: str
) -> None:
    (report_copy / file).write_text(sql)
    with pytest.raises(ReportSpecError) as raised:
        load_report(report_copy)
    message = str(raised.value)
    step = "create_summary" if file == "drop_summary.sql" else "write_report"
    assert f"daily_country_report/report.yaml: step {step}: compensation {file}" in message
    assert reason in message and "\n" not in message


def test_compensation_keyed_by_saga_among_other_conditions_and_comments_loads(
    report_copy: Path,
) -> None:
    (report_copy / "delete_report_rows.sql").write_text(
        "-- undo: this saga's rows only\nDELETE FROM reports.daily_country_report\n"
        "WHERE (country <> 'XX' AND :saga_id = saga_id) -- ${summary}\n"
    )
    assert load_report(report_copy).steps["write_report"].compensation == (
        "delete_report_rows.sql",
    )


def test_creates_needs_a_create_table_in_the_action_not_in_a_comment(report_copy: Path) -> None:
    (report_copy / "create_summary.sql").write_text(
        "SELECT :start_date, :end_date, :min_events -- ${summary}"
    )
    with pytest.raises(
        ReportSpecError, match="creates \\$\\{summary\\} but its action never creates it"
    ):
        load_report(report_copy)


@pytest.mark.parametrize(
    "path", ["../../outside/evil.sql", "../daily_country_report/preview_report.sql"]
)
def test_sql_file_outside_the_report_folder_is_refused(report_copy: Path, path: str) -> None:
    (report_copy.parent.parent / "outside").mkdir(exist_ok=True)
    (report_copy.parent.parent / "outside" / "evil.sql").write_text("SELECT 1")
    edit_spec(report_copy, lambda d: d["steps"]["write_report"].update(preview=path))
    with pytest.raises(ReportSpecError, match="must be a relative path inside the report folder"):
        load_report(report_copy)


def test_absolute_sql_path_is_refused_without_reading_the_file(
    report_copy: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.sql"
    secret.write_text("root:x:0:0:SECRET-CONTENT")
    edit_spec(report_copy, lambda d: d["steps"]["write_report"].update(preview=str(secret)))
    with pytest.raises(ReportSpecError, match="must be a relative path") as raised:
        load_report(report_copy)
    assert "SECRET-CONTENT" not in str(raised.value)


def test_symlink_leading_outside_the_report_folder_is_refused(
    report_copy: Path, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere.sql").write_text("SELECT 1")
    (report_copy / "preview_report.sql").unlink()
    (report_copy / "preview_report.sql").symlink_to(tmp_path / "elsewhere.sql")
    with pytest.raises(
        ReportSpecError, match=r"preview_report\.sql leads outside the report folder"
    ):
        load_report(report_copy)


def test_sql_error_names_the_place_without_quoting_the_file(report_copy: Path) -> None:
    (report_copy / "preview_report.sql").write_text(
        "root x 0 0 SECRET CONTENT /root /bin/bash"
    )  # sqlglot quotes it
    with pytest.raises(
        ReportSpecError, match=r"preview_report\.sql is not valid Trino SQL \(line 1, column"
    ) as raised:
        load_report(report_copy)
    assert "SECRET" not in str(raised.value)


def test_oversized_sql_file_is_refused(report_copy: Path) -> None:
    (report_copy / "preview_report.sql").write_text("SELECT 1 --" + "x" * MAX_SQL_BYTES)
    with pytest.raises(
        ReportSpecError, match=r"preview_report\.sql is larger than the 1024 KiB allowed"
    ):
        load_report(report_copy)


def test_oversized_spec_is_refused(report_copy: Path) -> None:
    with (report_copy / "report.yaml").open("a") as spec:
        spec.write("#" + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(ReportSpecError, match=r"report\.yaml is larger than"):
        load_report(report_copy)


def test_yaml_alias_bomb_is_refused_at_once(report_copy: Path) -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)
    ]  # 10**10 values
    with (report_copy / "report.yaml").open("a") as spec:
        spec.write("\n".join(["bomb:", *("  " + line for line in lines)]) + "\n")
    started = time.monotonic()
    with pytest.raises(
        ReportSpecError, match="more than 10000 values once its aliases are expanded"
    ):
        load_report(report_copy)
    assert time.monotonic() - started < 2


def test_yaml_aliases_that_stay_small_still_load(report_copy: Path) -> None:
    # yaml.safe_dump writes an anchor and aliases for a value used twice (as test fixtures do)
    retry = {"max_retries": 1, "delay_seconds": 0.5, "backoff": 2}
    edit_spec(report_copy, lambda d: [step.update(retry=retry) for step in d["steps"].values()])
    assert "*id001" in (report_copy / "report.yaml").read_text()
    assert load_report(report_copy).steps["write_report"].retry.max_retries == 1


def test_deeply_nested_yaml_is_refused(report_copy: Path) -> None:
    with (report_copy / "report.yaml").open("a") as spec:
        spec.write("nested: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ReportSpecError, match="nested deeper than 32 levels"):
        load_report(report_copy)


def test_spec_error_is_one_line_without_the_input(report_copy: Path) -> None:
    edit_spec(
        report_copy, lambda d: d["parameters"]["min_events"].update(type="SECRET-TYPE", min="many")
    )
    with pytest.raises(ReportSpecError) as raised:
        load_report(report_copy)
    message = str(raised.value)
    assert "parameters.min_events.type: Input should be 'date', 'integer' or 'string'" in message
    assert "parameters.min_events.min:" in message
    assert "\n" not in message and "SECRET" not in message


def test_parameters_are_typed() -> None:
    spec = load_report(DAILY)
    values = spec.parse_parameters({"start_date": "2026-01-01", "end_date": "2026-01-31"})
    assert values == {
        "start_date": dt.date(2026, 1, 1),
        "end_date": dt.date(2026, 1, 31),
        "min_events": 5,
    }


@pytest.mark.parametrize(
    ("raw", "field", "problem"),
    [
        (
            {"start_date": "2026-02-01", "end_date": "2026-01-01"},
            "end_date",
            "must not be before start_date",
        ),
        ({"start_date": "yesterday", "end_date": "2026-01-01"}, "start_date", "not an ISO date"),
        ({"start_date": "2024-01-01", "end_date": "2026-01-01"}, "end_date", "at most 366"),
        (
            {"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": -5},
            "min_events",
            "below the minimum 0",
        ),
        (
            {"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": "many"},
            "min_events",
            "not an integer",
        ),
        ({"end_date": "2026-01-02"}, "start_date", "is required"),
        (
            {"start_date": "20260101", "end_date": "2026-01-02"},
            "start_date",
            "not an ISO date (YYYY-MM-DD)",
        ),
        (
            {"start_date": "2026-1-1", "end_date": "2026-01-02"},
            "start_date",
            "not an ISO date (YYYY-MM-DD)",
        ),
        (
            {"start_date": "2026-01-01T00:00", "end_date": "2026-01-02"},
            "start_date",
            "not an ISO date (YYYY-MM-DD)",
        ),
        (
            {"start_date": dt.datetime(2026, 1, 1), "end_date": "2026-01-02"},
            "start_date",
            "not an ISO date",
        ),
        (
            {"start_date": "2026-02-30", "end_date": "2026-03-02"},
            "start_date",
            "day is out of range for month",
        ),
        (
            {"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": 2.5},
            "min_events",
            "not an integer",
        ),
        (
            {"start_date": "2026-01-01", "end_date": "2026-01-02", "typo": 1},
            "typo",
            "unknown parameter",
        ),
    ],
)
def test_bad_parameters_name_the_field(raw: dict, field: str, problem: str) -> None:
    with pytest.raises(ParameterError) as raised:
        load_report(DAILY).parse_parameters(raw)
    assert problem in raised.value.problems[field]


def test_null_parameter_is_one_line_saying_a_value_is_required() -> None:
    with pytest.raises(ParameterError) as raised:
        load_report(DAILY).parse_parameters(
            {"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": None}
        )
    assert str(raised.value) == "min_events: a value is required"


def test_scratch_table_names_are_derived_from_the_saga_and_valid() -> None:
    tables = load_report(DAILY).scratch_tables(
        "9E71ABED-d3ce-4b6f-b7be-4f5bd48cf3a4", "lake", "scratch"
    )
    assert str(tables["summary"]) == "lake.scratch.saga_9e71abedd3ce4b6fb7be4f5bd48cf3a4_summary"
    assert saga_key("run-1") == "run1"
