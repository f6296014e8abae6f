"""`report-pipeline reports validate`: every report checked, a broken one named, exit code 1."""

from __future__ import annotations

import shutil
import subprocess
import sys

from report_pipeline.reporting import REPORTS_DIR


def validate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "report_pipeline.cli", "reports", "validate", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_shipped_reports_validate() -> None:
    result = validate()
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "ok   daily_country_report: 3 steps (create_summary -> write_report -> drop_summary)"
        in result.stdout
    )
    assert "ok   weekly_engagement_report" in result.stdout


def test_broken_report_is_named_and_fails(tmp_path) -> None:
    shutil.copytree(REPORTS_DIR / "daily_country_report", tmp_path / "daily_country_report")
    (tmp_path / "daily_country_report" / "write_report.sql").write_text(
        "INSERT INTO t SELECT :nope"
    )
    result = validate("--dir", str(tmp_path))
    assert result.returncode == 1
    assert "FAIL daily_country_report" in result.stdout and ":nope" in result.stdout
