"""`report-pipeline metrics` and `status` run beside production: they load neither the local engine nor a SQL parser."""

from __future__ import annotations

import subprocess
import sys


def test_the_metrics_and_status_commands_load_neither_duckdb_nor_sqlglot() -> None:
    probe = (
        "import sys, report_pipeline.cli, report_pipeline.observability.metrics, "
        "report_pipeline.observability.status; print(sorted({'duckdb', 'sqlglot'} & set(sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
