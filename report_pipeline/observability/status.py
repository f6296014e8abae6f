"""Sagas as text, from the ledger: the recent ones, or one saga's steps, progress and compensations.

Serves `report-pipeline status` (engineers on a box without the UI) and the demo's printout. Every
string read from the ledger (step names, errors, parameters, reasons...) reaches the terminal with
its control characters escaped, so a Trino error or a parameter cannot move the cursor, recolour the
screen or forge a line of the view.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import sqlalchemy as sa
from tabulate import tabulate

from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import (
    AttemptKind,
    AttemptStatus,
    SagaRecord,
    SagaState,
    StepAttempt,
)
from report_pipeline.storage.datetimes import as_utc
from report_pipeline.storage.engine import describe_failure
from report_pipeline.storage.schema import installed_version

# `status --follow SAGA_ID` exits with the saga's outcome, for scripts that wait on one
EXIT_CODES = {SagaState.SUCCEEDED: 0, SagaState.COMPENSATED: 1, SagaState.FAILED_NEEDS_MANUAL: 2}
UNREACHABLE = 3  # the ledger could not be read (one line on stderr says why)
_CLEAR = "\x1b[H\x1b[2J"
# C0 controls, DEL and C1 controls (ESC starts terminal sequences, and so does CSI, U+009B), as
# escapes
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
}

# a step's state in the saga's current generation, from its attempts
PENDING, RUNNING, SUCCEEDED, FAILED, COMPENSATED, UNDO_FAILED = (
    "pending",
    "running",
    "succeeded",
    "failed",
    "compensated",
    "undo failed",
)


def show_status(
    ledger: SqlLedger,
    saga_id: str | None,
    *,
    follow: bool = False,
    interval: float = 1.0,
    limit: int = 20,
    states: Sequence[str] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the view once, or redraw it until the saga ends (or Ctrl-C); the exit code."""
    wanted = [SagaState(s) for s in states] if states else None
    last = None
    try:
        while True:
            saga = None
            if saga_id is None:
                text = describe_recent(ledger, limit, wanted)
            else:
                saga = _read(ledger.get_saga, saga_id) if _has_tables(ledger) else None
                if saga is None:
                    print(f"no saga {escape(saga_id)} in the ledger", file=sys.stderr)
                    return 1
                text = describe_saga(ledger, saga_id)
            if out.isatty() and follow:
                out.write(_CLEAR + text + "\n")
            elif text != last:
                out.write(text + "\n" + ("\n" if follow else ""))
            out.flush()
            last = text
            if not follow:
                return 0
            if saga is not None and saga.state.terminal:
                return EXIT_CODES[saga.state]
            time.sleep(interval)
    except KeyboardInterrupt:
        return 130
    except sa.exc.SQLAlchemyError as error:
        # down, hung (a timeout), refused: one line, no traceback
        print(f"error: {describe_failure(ledger.engine.url, error)}", file=sys.stderr)
        return UNREACHABLE


def escape(text: str) -> str:
    """`text` with its control characters written as escapes (\\x1b, \\n...): one line, inert on a
    terminal."""
    return text.translate(_ESCAPES)


def _clean(value: Any) -> Any:
    """A value read from the ledger with every string in it escaped (records, lists, dicts; states
    kept)."""
    if isinstance(value, enum.Enum):
        return value
    if isinstance(value, str):
        return escape(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(
            value,
            **{f.name: _clean(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init},
        )
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(v) for v in value)
    return value


def _read(method: Any, *args: Any, **kwargs: Any) -> Any:
    """What a ledger read returns, safe to print."""
    return _clean(method(*args, **kwargs))


def _has_tables(ledger: SqlLedger) -> bool:
    """False until a saga has run and created the ledger's tables: an empty ledger, not an error."""
    with ledger.engine.connect() as connection:
        return installed_version(connection) > 0


@functools.lru_cache(maxsize=64)
def _report_steps(report: str) -> tuple[str, ...]:
    """The report's steps in execution order, if this machine has its spec (else the ledger's
    order). Read once per report: `--follow` redraws every second."""
    from report_pipeline import settings
    from report_pipeline.reporting import REPORTS_DIR, ReportSpecError, load_report

    folder = (settings.REPORTS_DIR.read() or REPORTS_DIR) / report
    try:
        return tuple(load_report(folder).saga_definition().order())
    except (ReportSpecError, OSError):
        return ()


def describe_saga(ledger: SqlLedger, saga_id: str, steps: Sequence[str] | None = None) -> str:
    """One saga: header, each step (in `steps` order, then any other the ledger knows),
    compensations, transitions and the tables it created."""
    saga = _read(ledger.get_saga, saga_id) if _has_tables(ledger) else None
    if saga is None:
        return f"no saga {escape(saga_id)}"
    steps = _report_steps(saga.saga_name) if steps is None else steps
    attempts = _read(ledger.attempts, saga_id)
    current = [a for a in attempts if a.generation == saga.generation]
    lines = [
        f"saga {saga.saga_id}  report {saga.saga_name}  state {saga.state.value}  "
        f"generation {saga.generation}",
        f"started {_time(saga.created_at)}  updated {_time(saga.updated_at)}  "
        f"{'took' if saga.state.terminal else 'running for'} {_duration(saga)}  "
        f"trigger {saga.trigger or '-'}  partition {saga.partition or '-'}  "
        f"run {saga.run_id or '-'}",
        f"parameters {', '.join(f'{k}={v}' for k, v in saga.parameters.items()) or '-'}",
    ]
    if saga.failed_step:
        lines.append(f"failed step {saga.failed_step} ({saga.failure_kind}): {saga.error}")
    if saga.interrupted_steps:
        lines.append(f"interrupted steps {', '.join(saga.interrupted_steps)}")
    if saga.state == SagaState.FAILED_NEEDS_MANUAL:
        lines.append(
            "NEEDS A PERSON: an undo kept failing (step state 'undo failed'); what it created may "
            "still exist; see the runbook in the README"
        )

    names = list(steps) + [a.step for a in current if a.step not in steps]
    rows = [
        _step_row(name, [a for a in current if a.step == name]) for name in dict.fromkeys(names)
    ]
    lines += [
        "",
        "steps:",
        tabulate(
            rows,
            headers=[
                "step",
                "state",
                "attempts",
                "trino query",
                "progress",
                "rows",
                "seconds",
                "error",
            ],
        ),
    ]

    undos = [a for a in attempts if a.kind == AttemptKind.COMPENSATION]
    if undos:
        lines += [
            "",
            "compensations:",
            tabulate(
                [
                    [
                        a.step,
                        a.generation,
                        a.attempt,
                        a.status.value,
                        a.query_id or "",
                        _seconds(a),
                        a.error or "",
                    ]
                    for a in undos
                ],
                headers=["step", "generation", "#", "status", "trino query", "seconds", "error"],
            ),
        ]

    lines += [
        "",
        "transitions:",
        tabulate(
            [
                [
                    _time(t.at),
                    t.old_state.value if t.old_state else "-",
                    t.new_state.value,
                    t.reason,
                ]
                for t in _read(ledger.transitions, saga_id)
            ],
            headers=["time", "from", "to", "reason"],
        ),
    ]

    created = _read(ledger.created_tables, saga_id)
    if created:
        lines += [
            "",
            "tables (recorded before the step that creates them ran):",
            tabulate(sorted(created.items()), headers=["table", "created by"]),
        ]
    return "\n".join(lines)


def describe_recent(
    ledger: SqlLedger, limit: int = 20, states: Sequence[SagaState] | None = None
) -> str:
    """The most recent sagas, newest first."""
    sagas = _read(ledger.list_sagas, states=states, limit=limit) if _has_tables(ledger) else []
    if not sagas:
        return "no sagas in the ledger" + (
            f" in state {', '.join(s.value for s in states)}" if states else ""
        )
    rows = [
        [
            s.saga_id,
            s.saga_name,
            s.state.value,
            s.trigger or "",
            s.partition or "",
            _time(s.created_at),
            _duration(s),
            _where(ledger, s),
        ]
        for s in sagas
    ]
    return tabulate(
        rows,
        headers=[
            "saga",
            "report",
            "state",
            "trigger",
            "partition",
            "started",
            "duration",
            "step / failure",
        ],
    )


def _step_row(name: str, attempts: list[StepAttempt]) -> list[object]:
    actions = [a for a in attempts if a.kind == AttemptKind.ACTION]
    last = actions[-1] if actions else None
    failed = next((a for a in reversed(attempts) if a.status == AttemptStatus.FAILED), None)
    return [
        name,
        _step_state(attempts),
        len([a for a in actions if a.attempt > 0]),
        (last.query_id or "") if last else "",
        _progress(last),
        "" if last is None or last.rows is None else f"{last.rows:,}",
        _seconds(last) if last else "",
        (failed.error_name or "") if failed else "",
    ]


def _step_state(attempts: list[StepAttempt]) -> str:
    state = PENDING
    for attempt in attempts:
        if attempt.kind == AttemptKind.ACTION:
            state = {AttemptStatus.RUNNING: RUNNING, AttemptStatus.SUCCEEDED: SUCCEEDED}.get(
                attempt.status, FAILED
            )
        elif attempt.status == AttemptStatus.SUCCEEDED:
            state = COMPENSATED
        elif attempt.status == AttemptStatus.FAILED:
            state = UNDO_FAILED
    return state


def _progress(attempt: StepAttempt | None) -> str:
    if attempt is None or attempt.status != AttemptStatus.RUNNING:
        return ""
    progress = attempt.progress
    if progress is None:
        return "submitted"
    percent = f" {progress.percent:.0f}%" if progress.percent is not None else ""
    rows = f" {progress.rows:,} rows" if progress.rows else ""
    return f"{progress.state}{percent}{rows}"


def _where(ledger: SqlLedger, saga: SagaRecord) -> str:
    if saga.failed_step:
        return f"{saga.failed_step}: {saga.failure_kind}"
    if saga.state == SagaState.RUNNING:
        running = [
            a.step
            for a in _read(ledger.attempts, saga.saga_id)
            if a.status == AttemptStatus.RUNNING and a.generation == saga.generation
        ]
        return ", ".join(dict.fromkeys(running))
    return ""


def _duration(saga: SagaRecord) -> str:
    end = saga.updated_at if saga.state.terminal else dt.datetime.now(dt.UTC)
    seconds = (as_utc(end) - as_utc(saga.created_at)).total_seconds()
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s" if minutes else f"{rest:.1f}s"


def _seconds(attempt: StepAttempt) -> str:
    if attempt.ended_at is None:
        return f"{(dt.datetime.now(dt.UTC) - as_utc(attempt.started_at)).total_seconds():.1f}+"
    return f"{(attempt.ended_at - attempt.started_at).total_seconds():.2f}"


def _time(moment: dt.datetime) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
