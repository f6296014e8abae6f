"""A compensation as the Dagster UI shows it: each undo attempt is an event in the run's log, with
its step, statement, table, rows removed, Trino query (and its link), time, attempt and outcome; a
failed undo is logged at error level with Trino's error. The same events come from every place a
compensation runs: the failure hook, a `compensate_saga` run, a re-execution taking a saga over.

Dagster lets a hook write only log lines; an engine event is the one kind of run-log entry with
metadata that both hooks and ops can write (`DagsterInstance.report_dagster_event`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg

# Dagster exports no name for an engine event's payload; dagster is pinned to 1.13 (pyproject.toml)
# and test_compensation_events reads these events back from the instance.
from dagster._core.events import EngineEventData
from tabulate import tabulate

from report_pipeline.orchestration.names import COMPENSATION_RUN_TAG
from report_pipeline.reporting.runner import UndoDetails, UndoStatement
from report_pipeline.saga import SagaState, UndoAttempt


@dataclass
class RunLog:
    """Where one run (and, within it, one step) writes its saga's compensation events; it keeps
    the undo attempts it was told of, for the compensation's summary."""

    instance: dg.DagsterInstance
    run_id: str
    job_name: str
    step_key: str | None
    trino_ui: str  # the Trino UI's base URL, for a query that has no page of its own yet
    undos: list[UndoAttempt] = field(default_factory=list)

    @classmethod
    def of(cls, context: dg.OpExecutionContext | dg.HookContext, trino_ui: str) -> RunLog:
        if isinstance(context, dg.HookContext):
            step_key = context.step_key
        else:
            step_key = context.get_step_execution_context().step.key
        return cls(context.instance, context.run_id, context.job_name, step_key, trino_ui)

    def undo(self, outcome: UndoAttempt) -> None:
        """An `UndoListener`: the attempt as an event of this run, at error level if it failed."""
        self.undos.append(outcome)
        self._event(
            _undo_message(outcome),
            _undo_metadata(outcome, self.trino_ui),
            logging.INFO if outcome.succeeded else logging.ERROR,
        )

    def compensation_summary(self, saga_id: str, state: SagaState) -> dict[str, dg.MetadataValue]:
        """What this run's compensation did, as an event (and as metadata for its caller)."""
        undone = list(dict.fromkeys(u.step for u in self.undos if u.succeeded))
        failed = sorted({u.step for u in self.undos if not u.succeeded} - set(undone))
        metadata: dict[str, dg.MetadataValue] = {
            "saga_id": dg.MetadataValue.text(saga_id),
            "final_state": dg.MetadataValue.text(state.value),
            "undone_steps": dg.MetadataValue.text(", ".join(undone) or "none"),
            "rows_removed": dg.MetadataValue.int(sum(_rows_removed(u) for u in self.undos)),
            "failed_undo_attempts": dg.MetadataValue.int(
                sum(1 for u in self.undos if not u.succeeded)
            ),
        }
        if failed:
            metadata["steps_not_undone"] = dg.MetadataValue.text(", ".join(failed))
        self._event(
            f"saga {saga_id} is {state.value}: undone {', '.join(undone) or 'nothing'}"
            + (f"; NOT undone: {', '.join(failed)}" if failed else ""),
            metadata,
            logging.ERROR if state == SagaState.FAILED_NEEDS_MANUAL else logging.INFO,
        )
        return metadata

    def link_compensated_run(self, run: dg.DagsterRun, state: SagaState) -> None:
        """Point the run whose saga this run compensated at it: a tag on that run (searchable in
        the runs list) and an event in its log that links here."""
        self.instance.add_run_tags(run.run_id, {COMPENSATION_RUN_TAG: self.run_id})
        self.instance.report_dagster_event(
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.ENGINE_EVENT.value,
                job_name=run.job_name,
                message=f"saga compensated by run {self.run_id}: {state.value}",
                event_specific_data=EngineEventData(
                    {
                        "compensation_run": dg.MetadataValue.dagster_run(self.run_id),
                        "final_state": dg.MetadataValue.text(state.value),
                    }
                ),
            ),
            run_id=run.run_id,
        )

    def _event(self, message: str, metadata: dict[str, dg.MetadataValue], level: int) -> None:
        self.instance.report_dagster_event(
            dg.DagsterEvent(
                event_type_value=dg.DagsterEventType.ENGINE_EVENT.value,
                job_name=self.job_name,
                message=message,
                event_specific_data=EngineEventData(metadata),
                step_key=self.step_key,
            ),
            run_id=self.run_id,
            log_level=level,
        )


def _statements(outcome: UndoAttempt) -> tuple[UndoStatement, ...]:
    details = outcome.result.details if outcome.result else outcome.details
    return details.statements if isinstance(details, UndoDetails) else ()


def _rows_removed(outcome: UndoAttempt) -> int:
    return UndoDetails(_statements(outcome)).rows_removed


def _undo_message(outcome: UndoAttempt) -> str:
    statements = _statements(outcome)
    what = "; ".join(_statement_text(s) for s in statements) or "no statement to send"
    attempt = f"attempt {outcome.attempt}/{outcome.max_attempts}"
    if outcome.succeeded:
        return f"undo of {outcome.step} succeeded ({attempt}): {what}"
    retry = ", will retry" if outcome.will_retry else ""
    error = outcome.error or ""
    if outcome.error_name and not error.startswith(outcome.error_name):
        error = f"{outcome.error_name}: {error}"
    return f"undo of {outcome.step} FAILED ({attempt}{retry}): {what}: {error}"


def _statement_text(statement: UndoStatement) -> str:
    text = f"{statement.kind.value} {statement.table}"
    if statement.rows is not None:
        text += f" ({statement.rows:,} rows removed)"
    return text


def _undo_metadata(outcome: UndoAttempt, trino_ui: str) -> dict[str, dg.MetadataValue]:
    statements = _statements(outcome)
    last = statements[-1] if statements else None
    query_id = outcome.query_id or (last.query_id if last else None)
    if outcome.succeeded:
        result = "succeeded"
    else:
        result = "failed, will retry" if outcome.will_retry else "failed"
    metadata: dict[str, dg.MetadataValue] = {
        "step": dg.MetadataValue.text(outcome.step),
        "outcome": dg.MetadataValue.text(result),
        "attempt": dg.MetadataValue.int(outcome.attempt),
        "max_attempts": dg.MetadataValue.int(outcome.max_attempts),
        "statement_kind": dg.MetadataValue.text(
            ", ".join(dict.fromkeys(s.kind.value for s in statements)) or "none"
        ),
        "table": dg.MetadataValue.text(", ".join(s.table for s in statements) or "none"),
        "rows_removed": dg.MetadataValue.int(_rows_removed(outcome)),
        "elapsed_seconds": dg.MetadataValue.float(round(outcome.elapsed_seconds, 3)),
    }
    if query_id:
        metadata["trino_query_id"] = dg.MetadataValue.text(query_id)
        info_uri = last.info_uri if last and last.query_id == query_id else None
        metadata["trino_ui"] = dg.MetadataValue.url(
            info_uri or f"{trino_ui}/ui/query.html?{query_id}"
        )
    if not outcome.succeeded:
        metadata["error"] = dg.MetadataValue.text(outcome.error or "")
        metadata["error_name"] = dg.MetadataValue.text(outcome.error_name or "")
    if len(statements) > 1:
        rows = [[s.sql_file, f"{s.kind.value} {s.table}", s.rows, s.query_id] for s in statements]
        headers = ["file", "statement", "rows removed", "query"]
        metadata["statements"] = dg.MetadataValue.md(
            tabulate(rows, headers=headers, tablefmt="github")
        )
    return metadata
