"""The saga ledger: the durable record of every saga, step attempt and state transition.

One implementation over SQLAlchemy Core serves PostgreSQL (production: the same server as the
Dagster instance) and SQLite (only for the zero-setup demo). Every write is one transaction; a
write that depends on the saga's state first locks the saga's row (`SELECT ... FOR UPDATE`), so
concurrent steps of one saga serialise their checks while different sagas never wait on each other.
Its tables, and the one migration path of every store in this database, are in
`report_pipeline/storage/schema.py`; the sweeper's records and the alert outbox are stores of their
own beside it (`orchestration/sweeper_records.py`, `alerting/outbox.py`) over the same engine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import sqlalchemy as sa

from report_pipeline.saga.errors import SagaFenced, StepError
from report_pipeline.saga.model import (
    TERMINAL_STATES,
    AttemptKind,
    AttemptStatus,
    RunKind,
    SagaRecord,
    SagaState,
    StatementFate,
    StepAttempt,
    StepProgress,
    StepResult,
    Transition,
    check_transition,
)
from report_pipeline.saga.scratch_names import saga_key_sql
from report_pipeline.storage import schema
from report_pipeline.storage.datetimes import utc_now
from report_pipeline.storage.engine import create_engine
from report_pipeline.storage.schema import resources, runs, sagas, step_attempts, transitions

_local_locks: dict[str, threading.Lock] = {}


class SqlLedger:
    def __init__(self, url_or_engine: str | sa.Engine):
        # the engine is shared with the other stores of this database (AlertOutbox, SweeperRecords)
        self.engine = (
            url_or_engine if isinstance(url_or_engine, sa.Engine) else create_engine(url_or_engine)
        )

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def exclusive(self, saga_id: str) -> Iterator[None]:
        """Hold the saga's exclusive lock (compensation, restoring skipped steps) across processes.

        On PostgreSQL a session advisory lock, released by the server if the holder dies; on SQLite
        (the single-process demo) a lock within this process.
        """
        if self.engine.dialect.name != "postgresql":
            with _local_locks.setdefault(saga_id, threading.Lock()):
                yield
            return
        key = int.from_bytes(hashlib.sha256(saga_id.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as connection:
            # waiting (for a compensation elsewhere to end) is the point: no statement timeout here
            connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
            connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                connection.commit()

    def migrate(self) -> int:
        """Create or upgrade the tables of every store in the ledger's database (schema.migrate)."""
        return schema.migrate(self.engine)

    # --- sagas and transitions ------------------------------------------------------------------
    def create_saga(
        self,
        saga_id: str,
        saga_name: str,
        parameters: dict[str, Any],
        run_id: str | None,
        trigger: str | None = None,
        partition: str | None = None,
    ) -> bool:
        """Record a new RUNNING saga; False (and no change) if it exists already."""
        with self.engine.begin() as connection:
            if connection.execute(
                sa.select(sagas.c.saga_id).where(sagas.c.saga_id == saga_id)
            ).first():
                return False
            now = utc_now()
            connection.execute(
                sagas.insert().values(
                    saga_id=saga_id,
                    saga_name=saga_name,
                    parameters=parameters,
                    state=SagaState.RUNNING.value,
                    run_id=run_id,
                    trigger=trigger,
                    partition_key=partition,
                    created_at=now,
                    updated_at=now,
                )
            )
            connection.execute(
                transitions.insert().values(
                    saga_id=saga_id,
                    old_state=None,
                    new_state=SagaState.RUNNING.value,
                    at=now,
                    reason="saga started",
                    run_id=run_id,
                )
            )
            if run_id:
                connection.execute(
                    runs.insert().values(
                        saga_id=saga_id,
                        run_id=run_id,
                        parent_run_id=None,
                        kind=RunKind.RUN.value,
                        linked_at=now,
                    )
                )
            return True

    def get_saga(self, saga_id: str) -> SagaRecord | None:
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(sagas).where(sagas.c.saga_id == saga_id))
                .mappings()
                .first()
            )
        return _saga(row) if row else None

    def list_sagas(
        self, states: Collection[SagaState] | None = None, limit: int = 100
    ) -> list[SagaRecord]:
        query = sa.select(sagas).order_by(sagas.c.created_at.desc()).limit(limit)
        if states is not None:
            query = query.where(sagas.c.state.in_([s.value for s in states]))
        with self.engine.connect() as connection:
            return [_saga(r) for r in connection.execute(query).mappings()]

    def unfinished_sagas(self, page_size: int = 500) -> Iterator[list[SagaRecord]]:
        """Every saga not in a terminal state, oldest first, in pages: none is ever left out."""
        yield from saga_pages(
            self.engine, sagas.c.state.notin_([s.value for s in TERMINAL_STATES]), page_size
        )

    def transition(
        self,
        saga_id: str,
        allowed_from: Collection[SagaState],
        new: SagaState,
        reason: str,
        run_id: str | None = None,
        **fields: Any,
    ) -> SagaState | None:
        """Move the saga to `new` if it is in one of `allowed_from`; the old state, or None if it
        was not."""
        with self.engine.begin() as connection:
            current = self._lock(connection, saga_id)
            if current not in allowed_from:
                return None
            if current != new:
                check_transition(current, new)
                self._record_transition(connection, saga_id, current, new, reason, run_id, fields)
            return current

    def _lock(self, connection: sa.Connection, saga_id: str) -> SagaState:
        state = connection.execute(
            sa.select(sagas.c.state).where(sagas.c.saga_id == saga_id).with_for_update()
        ).scalar()
        if state is None:
            raise KeyError(f"no saga {saga_id}")
        return SagaState(state)

    @staticmethod
    def _record_transition(
        connection: sa.Connection,
        saga_id: str,
        old: SagaState,
        new: SagaState,
        reason: str,
        run_id: str | None,
        fields: dict[str, Any],
    ) -> None:
        now = utc_now()
        connection.execute(
            sagas.update()
            .where(sagas.c.saga_id == saga_id)
            .values(state=new.value, updated_at=now, **fields)
        )
        connection.execute(
            transitions.insert().values(
                saga_id=saga_id,
                old_state=old.value,
                new_state=new.value,
                at=now,
                reason=reason,
                run_id=run_id,
            )
        )

    def transitions(self, saga_id: str) -> list[Transition]:
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    sa.select(transitions)
                    .where(transitions.c.saga_id == saga_id)
                    .order_by(transitions.c.id)
                )
                .mappings()
                .all()
            )
        return [
            Transition(
                r["saga_id"],
                SagaState(r["old_state"]) if r["old_state"] else None,
                SagaState(r["new_state"]),
                r["at"],
                r["reason"],
                r["run_id"],
            )
            for r in rows
        ]

    # --- runs -----------------------------------------------------------------------------------
    def link_run(self, saga_id: str, run_id: str, parent_run_id: str | None, kind: RunKind) -> bool:
        """Tie a (re-)execution or compensation run to the saga; False if it was tied already."""
        with self.engine.begin() as connection:
            exists = connection.execute(
                sa.select(runs.c.run_id).where(runs.c.saga_id == saga_id, runs.c.run_id == run_id)
            ).first()
            if exists:
                return False
            connection.execute(
                runs.insert().values(
                    saga_id=saga_id,
                    run_id=run_id,
                    parent_run_id=parent_run_id,
                    kind=kind,
                    linked_at=utc_now(),
                )
            )
            return True

    def runs(self, saga_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [
                dict(r)
                for r in connection.execute(
                    sa.select(runs).where(runs.c.saga_id == saga_id).order_by(runs.c.linked_at)
                ).mappings()
            ]

    def runs_of(self, saga_ids: Collection[str]) -> dict[str, list[dict[str, Any]]]:
        """The runs tied to each of many sagas at once, oldest first (what a sensor tick reads)."""
        found: dict[str, list[dict[str, Any]]] = {saga_id: [] for saga_id in saga_ids}
        with self.engine.connect() as connection:
            for row in connection.execute(
                sa.select(runs).where(runs.c.saga_id.in_(list(saga_ids))).order_by(runs.c.linked_at)
            ).mappings():
                found[row["saga_id"]].append(dict(row))
        return found

    def latest_run(self, saga_id: str) -> dict[str, Any] | None:
        """The run most recently tied to the saga (the first run, a re-execution or a
        compensation)."""
        with self.engine.connect() as connection:
            row = (
                connection.execute(
                    sa.select(runs)
                    .where(runs.c.saga_id == saga_id)
                    .order_by(runs.c.linked_at.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None

    def begin_rerun(self, saga_id: str, run_id: str, parent_run_id: str | None) -> SagaState | None:
        """A new run takes over the saga: back to RUNNING from an ended attempt. Old state, or
        None."""
        with self.engine.begin() as connection:
            current = self._lock(connection, saga_id)
            row = connection.execute(
                sa.select(sagas.c.run_id).where(sagas.c.saga_id == saga_id)
            ).scalar()
            if row == run_id:
                return None  # this run drives the saga already
            if current not in (
                SagaState.COMPENSATED,
                SagaState.SUCCEEDED,
                SagaState.FAILED_NEEDS_MANUAL,
            ):
                return None
            self._record_transition(
                connection,
                saga_id,
                current,
                SagaState.RUNNING,
                f"re-executed by run {run_id}",
                run_id,
                {
                    "run_id": run_id,
                    "failure_kind": None,
                    "failed_step": None,
                    "error": None,
                    "interrupted_steps": None,
                    "generation": sagas.c.generation + 1,
                },
            )
            connection.execute(
                runs.insert().values(
                    saga_id=saga_id,
                    run_id=run_id,
                    parent_run_id=parent_run_id,
                    kind=RunKind.REEXECUTION.value,
                    linked_at=utc_now(),
                )
            )
            return current

    def find_saga_by_key(self, key: str) -> SagaRecord | None:
        """The saga whose scratch tables carry `key` in their names (see saga/scratch_names.py)."""
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(sagas).where(saga_key_sql(sagas.c.saga_id) == key))
                .mappings()
                .first()
            )
        return _saga(row) if row else None

    # --- step attempts --------------------------------------------------------------------------
    def start_attempt(
        self,
        saga_id: str,
        step: str,
        kind: AttemptKind,
        run_id: str | None,
        attempt: int,
        require_running: bool,
        created_tables: Collection[str] = (),
    ) -> int:
        """Record an attempt as RUNNING, with the tables it will create; fenced on the saga's
        state."""
        with self.engine.begin() as connection:
            state = self._lock(connection, saga_id)
            if require_running and state != SagaState.RUNNING:
                raise SagaFenced(saga_id, state.value)
            now = utc_now()
            for name in created_tables:
                known = connection.execute(
                    sa.select(resources.c.name).where(
                        resources.c.saga_id == saga_id, resources.c.name == name
                    )
                ).first()
                if not known:
                    connection.execute(
                        resources.insert().values(
                            saga_id=saga_id, name=name, step=step, recorded_at=now
                        )
                    )
            generation = connection.execute(
                sa.select(sagas.c.generation).where(sagas.c.saga_id == saga_id)
            ).scalar()
            return connection.execute(
                step_attempts.insert()
                .values(
                    saga_id=saga_id,
                    step=step,
                    kind=kind.value,
                    status=AttemptStatus.RUNNING.value,
                    run_id=run_id,
                    generation=generation,
                    attempt=attempt,
                    started_at=now,
                )
                .returning(step_attempts.c.id)
            ).scalar_one()

    def record_carried(self, saga_id: str, step: str, run_id: str) -> None:
        """Note in the current generation that a skipped step's effects from an earlier one still
        stand."""
        with self.engine.begin() as connection:
            self._lock(connection, saga_id)
            generation = connection.execute(
                sa.select(sagas.c.generation).where(sagas.c.saga_id == saga_id)
            ).scalar()
            now = utc_now()
            connection.execute(
                step_attempts.insert().values(
                    saga_id=saga_id,
                    step=step,
                    kind=AttemptKind.ACTION.value,
                    status=AttemptStatus.SUCCEEDED.value,
                    run_id=run_id,
                    generation=generation,
                    attempt=0,
                    started_at=now,
                    ended_at=now,
                )
            )

    def finish_attempt(
        self,
        saga_id: str,
        attempt_id: int,
        status: AttemptStatus,
        result: StepResult | None = None,
        error: BaseException | None = None,
    ) -> SagaState:
        """Close an attempt; returns the saga's state at that moment (a late success checks it)."""
        values: dict[str, Any] = {"status": status.value, "ended_at": utc_now()}
        if result is not None:
            values.update(
                query_id=result.query_id,
                rows=result.rows,
                bytes=result.bytes,
                queued_seconds=result.queued_seconds,
            )
        if error is not None:
            values["error"] = str(error)
            if isinstance(error, StepError):
                values["error_name"] = error.error_name
                if error.query_id:
                    values["query_id"] = error.query_id
            else:
                values["error_name"] = type(error).__name__
        with self.engine.begin() as connection:
            state = self._lock(connection, saga_id)
            connection.execute(
                step_attempts.update().where(step_attempts.c.id == attempt_id).values(**values)
            )
            return state

    def record_statement(self, attempt_id: int, statement_id: str) -> None:
        """Note the statement a running attempt has just submitted, so a compensation can stop it
        even if the attempt's process dies (its last statement is the one that may still run)."""
        with self.engine.begin() as connection:
            connection.execute(
                step_attempts.update()
                .where(
                    step_attempts.c.id == attempt_id,
                    step_attempts.c.status == AttemptStatus.RUNNING.value,
                )
                .values(query_id=statement_id)
            )

    def settle_attempt(self, saga_id: str, attempt_id: int, fate: StatementFate) -> bool:
        """Close an attempt its process abandoned with what became of its statement; False if the
        attempt was closed meanwhile (its process was alive and knew the outcome first)."""
        with self.engine.begin() as connection:
            self._lock(connection, saga_id)
            closed = connection.execute(
                step_attempts.update()
                .where(
                    step_attempts.c.id == attempt_id,
                    step_attempts.c.status == AttemptStatus.RUNNING.value,
                )
                .values(
                    status=fate.status.value,
                    ended_at=utc_now(),
                    error=fate.error,
                    error_name=fate.error_name,
                    rows=fate.rows,
                )
            )
            return closed.rowcount == 1

    def merge_interrupted(
        self, saga_id: str, run_id: str | None, steps: Collection[str], rank: Callable[[str], int]
    ) -> None:
        """Add steps a stop of `run_id` interrupted to a saga that stop already moved on. A failed
        step derived from the interrupted steps (a stop from outside) follows the merged list."""
        with self.engine.begin() as connection:
            self._lock(connection, saga_id)
            row = connection.execute(
                sa.select(sagas.c.run_id, sagas.c.failed_step, sagas.c.interrupted_steps).where(
                    sagas.c.saga_id == saga_id
                )
            ).one()
            if row.run_id != run_id:
                return
            old = list(row.interrupted_steps or [])
            merged = sorted(set(old) | set(steps), key=rank)
            if merged == old:
                return
            values: dict[str, Any] = {"interrupted_steps": merged}
            if row.failed_step is None or row.failed_step in old:
                values["failed_step"] = merged[0]
            connection.execute(sagas.update().where(sagas.c.saga_id == saga_id).values(**values))

    def record_progress(self, saga_id: str, step: str, progress: StepProgress) -> None:
        """Note how far the step's running attempt has got (shown by `report-pipeline status`)."""
        running = (
            sa.select(sa.func.max(step_attempts.c.id))
            .where(
                step_attempts.c.saga_id == saga_id,
                step_attempts.c.step == step,
                step_attempts.c.status == AttemptStatus.RUNNING.value,
            )
            .scalar_subquery()
        )
        with self.engine.begin() as connection:
            connection.execute(
                step_attempts.update()
                .where(step_attempts.c.id == running)
                .values(
                    progress_state=progress.state,
                    progress_percent=progress.percent,
                    progress_rows=progress.rows,
                    progress_bytes=progress.bytes,
                    progress_at=utc_now(),
                )
            )

    def attempts(self, saga_id: str) -> list[StepAttempt]:
        with self.engine.connect() as connection:
            rows = (
                connection.execute(
                    sa.select(step_attempts)
                    .where(step_attempts.c.saga_id == saga_id)
                    .order_by(step_attempts.c.id)
                )
                .mappings()
                .all()
            )
        return [
            StepAttempt(
                r["id"],
                r["saga_id"],
                r["step"],
                AttemptKind(r["kind"]),
                AttemptStatus(r["status"]),
                r["run_id"],
                r["attempt"],
                r["started_at"],
                r["ended_at"],
                r["query_id"],
                r["rows"],
                r["bytes"],
                r["error"],
                r["error_name"],
                r["generation"],
                r["queued_seconds"],
                _progress(r),
            )
            for r in rows
        ]

    def created_tables(self, saga_id: str) -> dict[str, str]:
        """Each table the saga's steps created (or were about to) -> the step that created it."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.select(resources.c.name, resources.c.step).where(resources.c.saga_id == saga_id)
            ).all()
        return {name: step for name, step in rows}


def _progress(row: Any) -> StepProgress | None:
    if row["progress_at"] is None:
        return None
    return StepProgress(
        row["progress_state"],
        row["progress_percent"],
        row["progress_rows"],
        row["progress_bytes"],
        row["progress_at"],
    )


def _saga(row: Any) -> SagaRecord:
    return SagaRecord(
        row["saga_id"],
        row["saga_name"],
        dict(row["parameters"]),
        SagaState(row["state"]),
        row["created_at"],
        row["updated_at"],
        row["run_id"],
        row["failure_kind"],
        row["failed_step"],
        row["error"],
        row["generation"],
        row["trigger"],
        row["partition_key"],
        tuple(row["interrupted_steps"] or ()),
    )


def saga_pages(
    engine: sa.Engine, condition: Any, page_size: int = 500
) -> Iterator[list[SagaRecord]]:
    """Every saga meeting `condition` (on the sagas table), oldest first, in pages of `page_size`.
    Keyset pages (created_at, saga_id): rows that leave the condition meanwhile shift nothing."""
    after: tuple[dt.datetime, str] | None = None
    while True:
        query = (
            sa.select(sagas)
            .where(condition)
            .order_by(sagas.c.created_at, sagas.c.saga_id)
            .limit(page_size)
        )
        if after is not None:
            query = query.where(sa.tuple_(sagas.c.created_at, sagas.c.saga_id) > after)
        with engine.connect() as connection:
            page = [_saga(r) for r in connection.execute(query).mappings()]
        if page:
            yield page
        if len(page) < page_size:
            return
        after = (page[-1].created_at, page[-1].saga_id)
