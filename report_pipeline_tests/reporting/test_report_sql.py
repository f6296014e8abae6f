"""Every report SQL file is valid Trino SQL once its generated table names are filled in."""

from __future__ import annotations

import pytest
import sqlglot

from report_pipeline.reporting import REPORTS_DIR
from report_pipeline.trino.sql import QualifiedName, parameter_names, render, table_placeholders

SQL_FILES = sorted(REPORTS_DIR.glob("*/*.sql"))


@pytest.mark.parametrize("path", SQL_FILES, ids=[f"{p.parent.name}/{p.name}" for p in SQL_FILES])
def test_sql_file_parses_as_one_trino_statement(path) -> None:
    text = path.read_text()
    tables = {
        name: QualifiedName("lake", "scratch", f"{name}_test") for name in table_placeholders(text)
    }
    statement = render(text, tables, {name: None for name in parameter_names(text)})
    assert len(sqlglot.parse(statement.sql, read="trino")) == 1
