"""A report's steps performed on Trino: the saga engine's StepRunner for one saga of one report.

Each step runs its SQL files in order, with the run's scratch tables substituted and the launch
parameters (plus `saga_id`) bound. A compensation only touches scratch tables the ledger records
this saga created: a table it never recorded was never created, so there is nothing to undo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from report_pipeline.reports.spec import ReportSpec
from report_pipeline.saga import StepDefinition, StepResult
from report_pipeline.trino.client import QueryOutcome, QueryProgress, TrinoClient
from report_pipeline.trino.sql import QualifiedName, render, table_placeholders

PREVIEW_ROWS = 20
log = structlog.get_logger("report_pipeline.reports")


class ReportStepRunner:
    def __init__(self, spec: ReportSpec, client: TrinoClient, saga_id: str, parameters: dict[str, Any], *,
                 scratch_schema: str, recorded_resources: Callable[[], set[str]],
                 on_progress: Callable[[str, QueryProgress], None] | None = None,
                 on_statement: Callable[[str, str, QueryOutcome], None] | None = None):
        self.spec = spec
        self.client = client
        self.saga_id = saga_id
        self.values = {**parameters, "saga_id": saga_id}
        self.tables = spec.scratch_tables(saga_id, client.settings.catalog, scratch_schema)
        self._recorded = recorded_resources
        self._on_progress = on_progress
        self._on_statement = on_statement

    def resources(self, step: StepDefinition) -> list[str]:
        return [str(self.tables[name]) for name in self.spec.steps[step.name].creates]

    def run_action(self, step: StepDefinition) -> StepResult:
        spec = self.spec.steps[step.name]
        outcomes = [self._run(step.name, file, spec.timeout_seconds) for file in spec.action]
        details: dict[str, Any] = {"statements": len(outcomes)}
        if spec.preview:
            preview = self._run(step.name, spec.preview, spec.timeout_seconds)
            details.update(preview_columns=preview.columns, preview_rows=preview.rows[:PREVIEW_ROWS],
                           report_row_count=len(preview.rows))
        last = outcomes[-1]
        return StepResult(query_id=last.query_id, rows=last.row_count,
                          bytes=sum(o.processed_bytes for o in outcomes),
                          elapsed_seconds=sum(o.elapsed_seconds for o in outcomes),
                          queued_seconds=_total_queued(outcomes),
                          details={**details, "info_uri": last.info_uri,
                                   "processed_rows": sum(o.processed_rows for o in outcomes)})

    def run_compensation(self, step: StepDefinition) -> StepResult:
        spec = self.spec.steps[step.name]
        recorded = self._recorded()
        outcomes = []
        for file in spec.compensation:
            names = table_placeholders(self.spec.sql_text(file))
            if any(str(self.tables[name]) not in recorded for name in names):
                continue      # never recorded, so never created by this saga: nothing to drop
            outcomes.append(self._run(step.name, file, spec.timeout_seconds))
        last = outcomes[-1] if outcomes else None
        return StepResult(query_id=last.query_id if last else None, rows=last.row_count if last else None,
                          elapsed_seconds=sum(o.elapsed_seconds for o in outcomes),
                          queued_seconds=_total_queued(outcomes))

    def _run(self, step: str, file: str, timeout_seconds: float) -> QueryOutcome:
        statement = render(self.spec.sql_text(file), self.tables, self.values)
        progress = (lambda p: self._on_progress(step, p)) if self._on_progress else None
        bound = log.bind(report=self.spec.name, saga_id=self.saga_id, step=step, sql_file=file)
        try:
            outcome = self.client.execute(statement, timeout_seconds=timeout_seconds, on_progress=progress)
        except Exception as error:
            bound.warning("statement failed", query_id=getattr(error, "query_id", None), error=str(error))
            raise
        bound.info("statement finished", query_id=outcome.query_id, rows=outcome.row_count,
                   elapsed_seconds=round(outcome.elapsed_seconds, 3))
        if self._on_statement:
            self._on_statement(step, file, outcome)
        return outcome

    def table(self, name: str) -> QualifiedName:
        return self.tables[name]


def _total_queued(outcomes: list[QueryOutcome]) -> float | None:
    queued = [o.queued_seconds for o in outcomes if o.queued_seconds is not None]
    return sum(queued) if queued else None
