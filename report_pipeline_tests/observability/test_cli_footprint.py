"""What runs beside production loads neither the local engine nor DuckDB: `report-pipeline
metrics` and `status` (not even a SQL parser), the code location and `report-pipeline reports
validate` (which parse the reports' SQL with sqlglot, and run none of it)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("duckdb", "sqlglot", "report_pipeline.local_trino")


def loaded_after(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running `code`."""
    probe = (
        f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_the_metrics_and_status_commands_load_neither_duckdb_nor_sqlglot() -> None:
    assert (
        loaded_after(
            "import report_pipeline.cli, report_pipeline.observability.metrics, "
            "report_pipeline.observability.status"
        )
        == set()
    )


def test_the_code_location_loads_neither_duckdb_nor_the_local_engine() -> None:
    assert loaded_after("import report_pipeline.definitions") == {"sqlglot"}


def test_reports_validate_loads_neither_duckdb_nor_the_local_engine() -> None:
    validate = (
        "from report_pipeline.cli import main\n"
        "try:\n"
        "    main(['reports', 'validate'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    assert loaded_after(validate) == {"sqlglot"}
