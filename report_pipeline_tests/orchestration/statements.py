"""The statements a report's steps send, derived from its spec: rendered for no saga in particular,
as regular expressions a test injects faults on or waits for, and parsed, for what they do."""

from __future__ import annotations

import re

from sqlglot import exp

from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.trino.sql import QualifiedName, parse_statement, render

# Stands for what only a run knows (the saga's key, the catalog and scratch schema); a valid
# identifier part that no report's SQL contains.
PLACEHOLDER = "zzplaceholderzz"


def placeholder_tables(spec: ReportSpec) -> dict[str, QualifiedName]:
    """The report's scratch tables as a run names them, PLACEHOLDER for what the run decides."""
    return {
        name: QualifiedName(PLACEHOLDER, PLACEHOLDER, f"saga_{PLACEHOLDER}_{name}")
        for name in spec.tables
    }


def rendered(spec: ReportSpec, file: str) -> str:
    """The statement of one of the report's SQL files as sent for a saga (parameters bound: `?`)."""
    values = dict.fromkeys([*spec.parameters, "saga_id"])
    return render(spec.sql_text(file), placeholder_tables(spec), values).sql


def parsed(spec: ReportSpec, file: str) -> exp.Expr:
    return parse_statement(rendered(spec, file))


def statement_pattern(spec: ReportSpec, file: str) -> str:
    """A regular expression found in the statement of `file` as the engine receives it, whatever the
    saga, catalog and scratch schema: its text from the first line that is not a comment."""
    lines = rendered(spec, file).splitlines()
    while lines and lines[0].lstrip().startswith("--"):
        lines.pop(0)
    words = [re.escape(word).replace(PLACEHOLDER, r"\w+") for word in " ".join(lines).split()]
    # a statement with parameters reaches the engine quoted inside EXECUTE IMMEDIATE '...'
    return r"\s+".join(words).replace("'", "''?")


def struck_file(spec: ReportSpec, step: str) -> str:
    """The file of the step's statement a test strikes: its action's last, so that a fault there
    finds the step's earlier statements done (the partial effects an undo must handle)."""
    return spec.steps[step].action[-1]


def step_statements(spec: ReportSpec) -> dict[str, str]:
    """For each step, in the report's order, the pattern of its struck statement."""
    return {
        step: statement_pattern(spec, struck_file(spec, step))
        for step in spec.saga_definition().order()
    }


def sent_in_order(spec: ReportSpec) -> list[tuple[str, str]]:
    """(step, file) of every statement a run that succeeds sends, in the report's order."""
    sent: list[tuple[str, str]] = []
    for step in spec.saga_definition().order():
        files = [*spec.steps[step].action, *filter(None, [spec.steps[step].preview])]
        sent.extend((step, file) for file in files)
    return sent


def scratch_table_written(spec: ReportSpec, file: str) -> str | None:
    """The scratch table (the report's name for it) that the file's statement creates, drops,
    inserts into or deletes from; None for any other table."""
    # the statement's own table is the shallowest: those it reads from are nested deeper
    target = parsed(spec, file).find(exp.Table)
    names = {name.table: table for table, name in placeholder_tables(spec).items()}
    return names.get(target.name) if target is not None else None
