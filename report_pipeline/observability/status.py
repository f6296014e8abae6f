"""A saga's story from the ledger, as text: its state, transitions, step attempts and resources."""

from __future__ import annotations

from tabulate import tabulate

from report_pipeline.saga.ledger import SqlLedger


def describe_saga(ledger: SqlLedger, saga_id: str) -> str:
    saga = ledger.get_saga(saga_id)
    if saga is None:
        return f"no saga {saga_id}"
    lines = [f"saga {saga.saga_id}  report {saga.saga_name}  state {saga.state.value}  "
             f"generation {saga.generation}", f"parameters {saga.parameters}"]
    if saga.failed_step:
        lines.append(f"failed step {saga.failed_step} ({saga.failure_kind}): {saga.error}")
    lines += ["", "transitions:", tabulate(
        [[t.at.strftime("%H:%M:%S.%f")[:-3], t.old_state.value if t.old_state else "-", t.new_state.value,
          t.reason] for t in ledger.transitions(saga_id)], headers=["time", "from", "to", "reason"])]
    lines += ["", "step attempts:", tabulate(
        [[a.step, a.kind.value, a.attempt, a.status.value, a.query_id or "", "" if a.rows is None else a.rows,
          _seconds(a), a.error_name or ""] for a in ledger.attempts(saga_id)],
        headers=["step", "kind", "#", "status", "trino query", "rows", "seconds", "error"])]
    return "\n".join(lines)


def _seconds(attempt) -> str:
    if attempt.ended_at is None:
        return ""
    return f"{(attempt.ended_at - attempt.started_at).total_seconds():.2f}"
