"""A report's steps performed on Trino: the saga engine's StepRunner for one saga of one report.

Each step runs its SQL files in order, with the run's scratch tables substituted and the launch
parameters (plus `saga_id`) bound. A compensation only touches scratch tables the ledger records
this saga created: a table it never recorded was never created, so there is nothing to undo. Each
rendered undo statement is parsed and checked before it is sent (compensation_sql.guard_rendered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from report_pipeline.reporting.compensation_sql import (
    UndoKind,
    guard_rendered,
    insert_targets,
)
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.saga import (
    AttemptStatus,
    StatementFate,
    StatementListener,
    StepDefinition,
    StepError,
    StepResult,
)
from report_pipeline.trino.client import QueryOutcome, QueryProgress, TrinoClient
from report_pipeline.trino.sql import Statement, parse_statement, render

PREVIEW_ROWS = 20
log = structlog.get_logger("report_pipeline.reporting")


@dataclass(frozen=True)
class ReportPreview:
    """The first rows of what a step wrote (its spec's `preview` query), for the UI."""

    columns: list[str]
    rows: list[list[Any]]  # at most PREVIEW_ROWS
    row_count: int  # all the rows the preview query returned


@dataclass(frozen=True)
class StepDetails:
    """What Trino said about a step's action beyond the ledger's figures, for the UI."""

    processed_rows: int = 0  # over every statement of the action
    info_uri: str | None = None  # the last statement's page in the Trino UI
    preview: ReportPreview | None = None


@dataclass(frozen=True)
class UndoStatement:
    """One statement of a step's undo, as Trino ran it (or failed it)."""

    sql_file: str
    kind: UndoKind
    table: str  # catalog.schema.table
    rows: int | None = None  # rows the statement removed (a DELETE's count; None for a DROP)
    query_id: str | None = None
    info_uri: str | None = None  # its page in the Trino UI
    elapsed_seconds: float = 0.0
    error: str | None = None
    error_name: str | None = None


@dataclass(frozen=True)
class UndoDetails:
    """What a step's undo did, statement by statement: StepResult.details of a compensation, and
    StepError.details when it failed part way (the failing statement last)."""

    statements: tuple[UndoStatement, ...] = ()

    @property
    def rows_removed(self) -> int:
        return sum(s.rows or 0 for s in self.statements if s.kind == UndoKind.DELETE)


class ReportStepRunner:
    def __init__(
        self,
        spec: ReportSpec,
        client: TrinoClient,
        saga_id: str,
        parameters: dict[str, Any],
        *,
        scratch_schema: str,
        recorded_tables: Callable[[], set[str]],
        on_progress: Callable[[str, QueryProgress], None] | None = None,
    ):
        """`recorded_tables`: the tables the ledger records this saga created, read at each undo."""
        self.spec = spec
        self.client = client
        self.saga_id = saga_id
        self.values = {**parameters, "saga_id": saga_id}
        self.tables = spec.scratch_tables(saga_id, client.settings.catalog, scratch_schema)
        self._recorded = recorded_tables
        self._on_progress = on_progress

    def created_tables(self, step: StepDefinition) -> list[str]:
        return [str(self.tables[name]) for name in self.spec.steps[step.name].creates]

    def run_action(
        self, step: StepDefinition, on_statement: StatementListener | None = None
    ) -> StepResult[StepDetails]:
        spec = self.spec.steps[step.name]
        outcomes = [
            self._run(step.name, file, spec.timeout_seconds, on_statement) for file in spec.action
        ]
        preview = None
        if spec.preview:
            shown = self._run(step.name, spec.preview, spec.timeout_seconds, on_statement)
            preview = ReportPreview(shown.columns, shown.rows[:PREVIEW_ROWS], len(shown.rows))
        last = outcomes[-1]
        return StepResult(
            query_id=last.query_id,
            rows=last.row_count,
            bytes=sum(o.processed_bytes for o in outcomes),
            elapsed_seconds=sum(o.elapsed_seconds for o in outcomes),
            queued_seconds=_total_queued(outcomes),
            details=StepDetails(
                processed_rows=sum(o.processed_rows for o in outcomes),
                info_uri=last.info_uri,
                preview=preview,
            ),
        )

    def run_compensation(
        self, step: StepDefinition, on_statement: StatementListener | None = None
    ) -> StepResult[UndoDetails]:
        spec = self.spec.steps[step.name]
        recorded = self._recorded()
        # what an undo may touch, in this saga's rendered names: the step's scratch tables, and the
        # tables its action inserts into (a DELETE of this saga's rows)
        scratch = [self.tables[name] for name in spec.creates]
        targets = insert_targets(
            parse_statement(render(self.spec.sql_text(file), self.tables, self.values).sql)
            for file in spec.action
        )
        outcomes: list[QueryOutcome] = []
        done: list[UndoStatement] = []
        for file in spec.compensation:
            statement = render(self.spec.sql_text(file), self.tables, self.values)
            target = guard_rendered(
                statement.sql,
                where=f"{self.spec.name}: step {step.name}: {file}",
                scratch=scratch,
                recorded=recorded,
                targets=targets,
            )
            if target is None:
                continue  # a scratch table never recorded was never created here: nothing to drop
            table = self._qualified(target.table)
            try:
                outcome = self._run(
                    step.name, file, spec.timeout_seconds, on_statement, statement=statement
                )
            except StepError as error:
                failed = UndoStatement(
                    file,
                    target.kind,
                    table,
                    query_id=error.query_id,
                    error=error.message,
                    error_name=error.error_name,
                )
                error.details = UndoDetails((*done, failed))
                raise
            outcomes.append(outcome)
            done.append(
                UndoStatement(
                    file,
                    target.kind,
                    table,
                    rows=outcome.row_count if target.kind == UndoKind.DELETE else None,
                    query_id=outcome.query_id,
                    info_uri=outcome.info_uri,
                    elapsed_seconds=outcome.elapsed_seconds,
                )
            )
        last = outcomes[-1] if outcomes else None
        return StepResult(
            query_id=last.query_id if last else None,
            rows=last.row_count if last else None,
            elapsed_seconds=sum(o.elapsed_seconds for o in outcomes),
            queued_seconds=_total_queued(outcomes),
            details=UndoDetails(tuple(done)),
        )

    def _qualified(self, table: str) -> str:
        """A table name as written, completed with the session's catalog and schema."""
        session = (self.client.settings.catalog, self.client.settings.schema)
        parts = table.split(".")
        return ".".join([*session[: 3 - len(parts)], *parts])

    def _run(
        self,
        step: str,
        file: str,
        timeout_seconds: float,
        on_statement: StatementListener | None = None,
        *,
        statement: Statement | None = None,
    ) -> QueryOutcome:
        """Run a file's statement (`statement`: already rendered, and checked, by the caller)."""
        statement = statement or render(self.spec.sql_text(file), self.tables, self.values)
        progress = partial(self._on_progress, step) if self._on_progress else None
        bound = log.bind(report=self.spec.name, saga_id=self.saga_id, step=step, sql_file=file)
        try:
            outcome = self.client.execute(
                statement,
                timeout_seconds=timeout_seconds,
                on_progress=progress,
                on_query_id=on_statement,
            )
        except Exception as error:
            bound.warning(
                "statement failed", query_id=getattr(error, "query_id", None), error=str(error)
            )
            raise
        bound.info(
            "statement finished",
            query_id=outcome.query_id,
            rows=outcome.row_count,
            elapsed_seconds=round(outcome.elapsed_seconds, 3),
        )
        return outcome

    def stop_statement(self, statement_id: str) -> StatementFate:
        """Cancel a Trino query by id and report how it ended (FINISHED counts as succeeded)."""
        fate = self.client.stop(statement_id)
        if fate.state == "FINISHED":
            return StatementFate(AttemptStatus.SUCCEEDED)
        error = fate.message or (
            "cancelled by the compensation"
            if fate.error_name == "USER_CANCELED"
            else "the engine no longer knows the statement"
        )
        return StatementFate(AttemptStatus.FAILED, error=error, error_name=fate.error_name)


def _total_queued(outcomes: list[QueryOutcome]) -> float | None:
    queued = [o.queued_seconds for o in outcomes if o.queued_seconds is not None]
    return sum(queued) if queued else None
