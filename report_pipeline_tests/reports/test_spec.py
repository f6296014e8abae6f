"""Report specs: what loads, what is refused (with a message naming the problem), launch parameters."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from report_pipeline.reports import REPORTS_DIR, load_reports
from report_pipeline.reports.spec import ParameterError, ReportSpecError, load_report, saga_key

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
    assert definition.step("create_summary").resources == ("summary",)
    assert definition.step("drop_summary").compensable is False


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["steps"]["write_report"].update(depends_on=["nope"]), "unknown"),
    (lambda d: d["steps"]["create_summary"].update(depends_on=["drop_summary"]), "cycle"),
    (lambda d: d["steps"]["create_summary"].update(action="missing.sql"), "cannot read missing.sql"),
    (lambda d: d["steps"]["create_summary"].update(creates=["other"]), "undeclared tables"),
    (lambda d: d["parameters"].pop("min_events"), "undeclared parameters :min_events"),
    (lambda d: d.update(tables=[]), "undeclared tables"),
    (lambda d: d["steps"]["create_summary"].update(compensation="create_summary.sql"), "a compensation is"),
    (lambda d: d["steps"]["create_summary"].update(surprise=1), "surprise"),
    (lambda d: d["parameters"]["min_events"].update(type="float"), "type"),
    (lambda d: d.pop("owner"), "owner"),
])
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
    (report_copy / "delete_report_rows.sql").write_text("DELETE FROM reports.daily_country_report WHERE true")
    with pytest.raises(ReportSpecError, match="saga_id = :saga_id"):
        load_report(report_copy)


def test_parameters_are_typed() -> None:
    spec = load_report(DAILY)
    values = spec.parse_parameters({"start_date": "2026-01-01", "end_date": "2026-01-31"})
    assert values == {"start_date": dt.date(2026, 1, 1), "end_date": dt.date(2026, 1, 31), "min_events": 5}


@pytest.mark.parametrize(("raw", "field", "problem"), [
    ({"start_date": "2026-02-01", "end_date": "2026-01-01"}, "end_date", "must not be before start_date"),
    ({"start_date": "yesterday", "end_date": "2026-01-01"}, "start_date", "not an ISO date"),
    ({"start_date": "2024-01-01", "end_date": "2026-01-01"}, "end_date", "at most 366"),
    ({"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": -5}, "min_events", "below the minimum 0"),
    ({"start_date": "2026-01-01", "end_date": "2026-01-02", "min_events": "many"}, "min_events", "not an integer"),
    ({"end_date": "2026-01-02"}, "start_date", "is required"),
    ({"start_date": "2026-01-01", "end_date": "2026-01-02", "typo": 1}, "typo", "unknown parameter"),
])
def test_bad_parameters_name_the_field(raw: dict, field: str, problem: str) -> None:
    with pytest.raises(ParameterError) as raised:
        load_report(DAILY).parse_parameters(raw)
    assert problem in raised.value.problems[field]


def test_scratch_table_names_are_derived_from_the_saga_and_valid() -> None:
    tables = load_report(DAILY).scratch_tables("9E71ABED-d3ce-4b6f-b7be-4f5bd48cf3a4", "lake", "scratch")
    assert str(tables["summary"]) == "lake.scratch.saga_9e71abedd3ce4b6fb7be4f5bd48cf3a4_summary"
    assert saga_key("run-1") == "run1"
