"""Report code: loading a report folder, running its steps on Trino, checking its compensations.

The reports themselves are data: one folder per report under `report_pipeline/reports/`, holding
`report.yaml` and its SQL files.
"""

from __future__ import annotations

from pathlib import Path

from report_pipeline.reporting.spec import SPEC_FILE, ReportSpec, ReportSpecError, load_report

REPORTS_DIR = Path(__file__).parent.parent / "reports"


def load_reports(directory: Path = REPORTS_DIR) -> dict[str, ReportSpec]:
    """Every report folder under `directory`, validated; the first invalid one raises."""
    return {
        folder.name: load_report(folder)
        for folder in sorted(p for p in directory.iterdir() if (p / SPEC_FILE).is_file())
    }


__all__ = ["REPORTS_DIR", "ReportSpec", "ReportSpecError", "load_report", "load_reports"]
