"""The saga ledger: the durable record of every saga, step attempt and state transition.

One implementation over SQLAlchemy Core serves PostgreSQL (production: the same server as the
Dagster instance) and SQLite (only for the zero-setup demo). Every write is one transaction; a
write that depends on the saga's state first locks the saga's row (`SELECT ... FOR UPDATE`), so
concurrent steps of one saga serialise their checks while different sagas never wait on each other.
The schema is created and migrated here (`migrate`), under an advisory lock on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from report_pipeline.saga.errors import SagaFenced, StepError
from report_pipeline.saga.model import (
    TERMINAL_STATES,
    AttemptKind,
    AttemptStatus,
    SagaRecord,
    SagaState,
    StatementFate,
    StepAttempt,
    StepProgress,
    StepResult,
    Transition,
    check_transition,
)

metadata = sa.MetaData()

sagas = sa.Table(
    "sagas",
    metadata,
    sa.Column("saga_id", sa.String(64), primary_key=True),
    sa.Column("saga_name", sa.String(128), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("trigger", sa.String(256)),  # manual, schedule:<name>, sensor:<name>, backfill:<id>
    sa.Column("partition_key", sa.String(64)),
    sa.Column("state", sa.String(32), nullable=False),
    # each run that takes the saga over (a re-execution) starts a new generation of step attempts
    sa.Column("generation", sa.Integer, nullable=False, server_default="1"),
    sa.Column("run_id", sa.String(64)),
    sa.Column("failure_kind", sa.String(32)),
    sa.Column("failed_step", sa.String(128)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # version 3: the steps whose statement the stop cut off (a JSON list, in the report's order)
    sa.Column("interrupted_steps", sa.JSON),
    sa.Index("ix_sagas_state", "state"),
    # version 4: sagas by report and state (each scrape) from the index alone
    sa.Index("ix_sagas_name_state", "saga_name", "state"),
)

step_attempts = sa.Table(
    "saga_step_attempts",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.saga_id"), nullable=False),
    sa.Column("step", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),  # 0: carried over from an earlier generation
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("query_id", sa.String(128)),
    sa.Column("rows", sa.BigInteger),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("error_name", sa.String(128)),
    # version 2: time the statements waited in the engine's queue, and live progress while running
    sa.Column("queued_seconds", sa.Float),
    sa.Column("progress_state", sa.String(32)),
    sa.Column("progress_percent", sa.Float),
    sa.Column("progress_rows", sa.BigInteger),
    sa.Column("progress_bytes", sa.BigInteger),
    sa.Column("progress_at", sa.DateTime(timezone=True)),
    # version 4: the fold (a random number) that added the finished attempt to saga_metric_totals
    sa.Column("metrics_fold", sa.BigInteger),
    sa.Index("ix_saga_step_attempts_saga_id", "saga_id"),
    # the attempts not yet in the totals: the only ones a scrape aggregates (a few, once folding keeps up)
    sa.Index(
        "ix_saga_step_attempts_unfolded",
        "id",
        postgresql_where=sa.text("metrics_fold IS NULL"),
        sqlite_where=sa.text("metrics_fold IS NULL"),
    ),
)

_UNFOLDED_ENDINGS = (
    "metrics_fold IS NULL AND new_state IN ("
    + ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATES))
    + ")"
)

transitions = sa.Table(
    "saga_transitions",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.saga_id"), nullable=False),
    sa.Column("old_state", sa.String(32)),
    sa.Column("new_state", sa.String(32), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(64)),
    # version 4: as for step attempts; only transitions into an end state are ever folded
    sa.Column("metrics_fold", sa.BigInteger),
    sa.Index("ix_saga_transitions_saga_id", "saga_id"),
    sa.Index(
        "ix_saga_transitions_unfolded",
        "id",
        postgresql_where=sa.text(_UNFOLDED_ENDINGS),
        sqlite_where=sa.text(_UNFOLDED_ENDINGS),
    ),
)

resources = sa.Table(
    "saga_resources",
    metadata,
    sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.saga_id"), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("step", sa.String(128), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
)

runs = sa.Table(
    "saga_runs",
    metadata,
    sa.Column("saga_id", sa.String(64), sa.ForeignKey("sagas.saga_id"), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("parent_run_id", sa.String(64)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
)

sweeper_sightings = sa.Table(
    "saga_sweeper_sightings",
    metadata,
    sa.Column("table_name", sa.String(512), primary_key=True),
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
)

sweeps = sa.Table(
    "saga_sweeps",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("table_name", sa.String(512), nullable=False),
    sa.Column("saga_id", sa.String(64)),
    sa.Column("saga_state", sa.String(32)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("dropped_at", sa.DateTime(timezone=True), nullable=False),
)

alerts = sa.Table(
    "saga_alerts",
    metadata,
    sa.Column("alert_key", sa.String(256), primary_key=True),  # one alert per saga outcome, ever
    sa.Column("saga_id", sa.String(64)),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, logged, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)

# version 4: what every finished step attempt and every ending has added to the exported metrics, so a
# scrape reads these few rows plus the rows not folded in yet instead of the whole history. One row per
# sample: (family, report, step or error name, status, sample) -> value, where sample is `count`,
# `sum` or a histogram bucket `le=<bound>`. Written only by `report-pipeline metrics`.
metric_totals = sa.Table(
    "saga_metric_totals",
    metadata,
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("saga_name", sa.String(128), primary_key=True),
    sa.Column("label", sa.String(128), primary_key=True),
    sa.Column("status", sa.String(32), primary_key=True),
    sa.Column("sample", sa.String(32), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)

schema_version = sa.Table(
    "saga_ledger_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


# Upgrades of an existing ledger, as (version, function of alembic Operations). A new ledger is
# created from the table definitions above and stamped with the latest version, as alembic advises.
def _v2_statement_stats_and_progress(operations: Operations) -> None:
    for name in (
        "queued_seconds",
        "progress_state",
        "progress_percent",
        "progress_rows",
        "progress_bytes",
        "progress_at",
    ):
        column = step_attempts.c[name]
        operations.add_column(step_attempts.name, sa.Column(name, column.type))


def _v3_interrupted_steps(operations: Operations) -> None:
    operations.add_column(sagas.name, sa.Column("interrupted_steps", sa.JSON))


def _v4_metric_totals(operations: Operations) -> None:
    """The metric totals, the marks of what they hold, and the indexes a scrape reads through; only what
    is missing, so a ledger that has some of it already is upgraded as well."""
    bind = operations.get_bind()
    inspector = sa.inspect(bind)
    for table in (step_attempts, transitions):
        if "metrics_fold" not in {column["name"] for column in inspector.get_columns(table.name)}:
            operations.add_column(table.name, sa.Column("metrics_fold", sa.BigInteger))
    for index in (*sagas.indexes, *step_attempts.indexes, *transitions.indexes):
        if index.name in (
            "ix_sagas_name_state",
            "ix_saga_step_attempts_unfolded",
            "ix_saga_transitions_unfolded",
        ) and index.name not in {i["name"] for i in inspector.get_indexes(index.table.name)}:
            index.create(bind)
    metric_totals.create(bind, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Operations], None]]] = [
    (2, _v2_statement_stats_and_progress),
    (3, _v3_interrupted_steps),
    (4, _v4_metric_totals),
]
LATEST_VERSION = max(version for version, _ in MIGRATIONS)
_MIGRATION_LOCK = 0x5A6A_1ED6  # advisory lock key shared by every process that migrates


_local_locks: dict[str, threading.Lock] = {}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqlLedger:
    def __init__(self, url_or_engine: str | sa.Engine):
        if isinstance(url_or_engine, sa.Engine):
            self.engine = url_or_engine
        else:
            options: dict[str, Any] = {"pool_pre_ping": True}
            if url_or_engine.startswith("sqlite"):
                options["connect_args"] = {"timeout": 30}
            else:
                options["connect_args"] = _postgres_connect_args(sa.make_url(url_or_engine))
            self.engine = sa.create_engine(url_or_engine, **options)

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

    # --- schema ---------------------------------------------------------------------------------
    def migrate(self) -> int:
        """Create or upgrade the ledger's tables; safe to call from many processes at once."""
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # waiting for another process's migration, and migrating a long history, must not time out
                connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
                connection.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
                )
            inspector = sa.inspect(connection)
            if not inspector.has_table(schema_version.name):
                metadata.create_all(connection)
                connection.execute(
                    schema_version.insert().values(version=LATEST_VERSION, applied_at=_now())
                )
                return LATEST_VERSION
            current = (
                connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
            )
            operations = Operations(MigrationContext.configure(connection))
            for version, upgrade in MIGRATIONS:
                if version > current:
                    upgrade(operations)
                    connection.execute(
                        schema_version.insert().values(version=version, applied_at=_now())
                    )
                    current = version
            return current

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
            now = _now()
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
                        kind="run",
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
        yield from self._pages(sagas.c.state.notin_([s.value for s in TERMINAL_STATES]), page_size)

    def sagas_without_alert(
        self,
        states: Collection[SagaState],
        *,
        alert_tail: str | None = None,
        updated_after: dt.datetime | None = None,
        updated_before: dt.datetime | None = None,
        page_size: int = 500,
    ) -> Iterator[list[SagaRecord]]:
        """Sagas in `states` that have no alert keyed `<saga_id>:<generation>:<tail>` yet (tail: the
        saga's state, or `alert_tail`), oldest first, in pages."""
        tail = sa.literal(alert_tail) if alert_tail else sagas.c.state
        key = sagas.c.saga_id + ":" + sa.cast(sagas.c.generation, sa.String) + ":" + tail
        condition = sa.and_(
            sagas.c.state.in_([s.value for s in states]),
            ~sa.exists().where(alerts.c.alert_key == key),
        )
        if updated_after is not None:
            condition = sa.and_(condition, sagas.c.updated_at >= updated_after)
        if updated_before is not None:
            condition = sa.and_(condition, sagas.c.updated_at < updated_before)
        yield from self._pages(condition, page_size)

    def _pages(self, condition: Any, page_size: int) -> Iterator[list[SagaRecord]]:
        """Keyset pages (created_at, saga_id): rows that leave the condition meanwhile shift nothing."""
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
            with self.engine.connect() as connection:
                page = [_saga(r) for r in connection.execute(query).mappings()]
            if page:
                yield page
            if len(page) < page_size:
                return
            after = (page[-1].created_at, page[-1].saga_id)

    def transition(
        self,
        saga_id: str,
        allowed_from: Collection[SagaState],
        new: SagaState,
        reason: str,
        run_id: str | None = None,
        **fields: Any,
    ) -> SagaState | None:
        """Move the saga to `new` if it is in one of `allowed_from`; the old state, or None if it was not."""
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
        now = _now()
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
    def link_run(self, saga_id: str, run_id: str, parent_run_id: str | None, kind: str) -> bool:
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
                    linked_at=_now(),
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
        """The run most recently tied to the saga (the first run, a re-execution or a compensation)."""
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
        """A new run takes over the saga: back to RUNNING from an ended attempt. Old state, or None."""
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
                    kind="reexecution",
                    linked_at=_now(),
                )
            )
            return current

    def find_saga_by_key(self, key: str) -> SagaRecord | None:
        """The saga whose id, lower-cased without dashes, is `key` (as scratch table names carry it)."""
        normalized = sa.func.lower(sa.func.replace(sagas.c.saga_id, "-", ""))
        with self.engine.connect() as connection:
            row = (
                connection.execute(sa.select(sagas).where(normalized == key.lower()))
                .mappings()
                .first()
            )
        return _saga(row) if row else None

    # --- the scratch sweeper's records ----------------------------------------------------------
    def first_seen(self, table_name: str, now: dt.datetime | None = None) -> dt.datetime:
        """When the sweeper first saw a table it cannot tie to a saga (recorded on first sight)."""
        with self.engine.begin() as connection:
            seen = connection.execute(
                sa.select(sweeper_sightings.c.first_seen).where(
                    sweeper_sightings.c.table_name == table_name
                )
            ).scalar()
            if seen is None:
                seen = now or _now()
                connection.execute(
                    sweeper_sightings.insert().values(table_name=table_name, first_seen=seen)
                )
            return seen if seen.tzinfo else seen.replace(tzinfo=dt.UTC)

    def record_sweep(self, table_name: str, saga: SagaRecord | None, reason: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sweeps.insert().values(
                    table_name=table_name,
                    saga_id=saga.saga_id if saga else None,
                    saga_state=saga.state.value if saga else None,
                    reason=reason,
                    dropped_at=_now(),
                )
            )
            connection.execute(
                sweeper_sightings.delete().where(sweeper_sightings.c.table_name == table_name)
            )

    def sweeps(self) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [
                dict(r)
                for r in connection.execute(sa.select(sweeps).order_by(sweeps.c.id)).mappings()
            ]

    # --- alerts ---------------------------------------------------------------------------------
    def record_alert(
        self, key: str, saga_id: str | None, kind: str, payload: dict[str, Any]
    ) -> bool:
        """Queue an alert; False if one with this key exists (so each outcome alerts exactly once)."""
        with self.engine.begin() as connection:
            if connection.execute(
                sa.select(alerts.c.alert_key).where(alerts.c.alert_key == key)
            ).first():
                return False
            now = _now()
            connection.execute(
                alerts.insert().values(
                    alert_key=key,
                    saga_id=saga_id,
                    kind=kind,
                    payload=payload,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            return True

    def due_alerts(self, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as connection:
            return [
                dict(r)
                for r in connection.execute(
                    sa.select(alerts)
                    .where(
                        alerts.c.status == "pending", alerts.c.next_attempt_at <= (now or _now())
                    )
                    .order_by(alerts.c.created_at)
                ).mappings()
            ]

    def update_alert(self, key: str, **values: Any) -> None:
        if values.get("status") in ("delivered", "logged"):
            values.setdefault("delivered_at", _now())
        with self.engine.begin() as connection:
            connection.execute(alerts.update().where(alerts.c.alert_key == key).values(**values))

    def alerts(self, saga_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(alerts).order_by(alerts.c.created_at)
        if saga_id is not None:
            query = query.where(alerts.c.saga_id == saga_id)
        with self.engine.connect() as connection:
            return [dict(r) for r in connection.execute(query).mappings()]

    # --- step attempts --------------------------------------------------------------------------
    def start_attempt(
        self,
        saga_id: str,
        step: str,
        kind: AttemptKind,
        run_id: str | None,
        attempt: int,
        require_running: bool,
        resource_names: Collection[str] = (),
    ) -> int:
        """Record an attempt as RUNNING, with the resources it will create; fenced on the saga's state."""
        with self.engine.begin() as connection:
            state = self._lock(connection, saga_id)
            if require_running and state != SagaState.RUNNING:
                raise SagaFenced(saga_id, state.value)
            now = _now()
            for name in resource_names:
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
        """Note in the current generation that a skipped step's effects from an earlier one still stand."""
        with self.engine.begin() as connection:
            self._lock(connection, saga_id)
            generation = connection.execute(
                sa.select(sagas.c.generation).where(sagas.c.saga_id == saga_id)
            ).scalar()
            now = _now()
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
        values: dict[str, Any] = {"status": status.value, "ended_at": _now()}
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
                    ended_at=_now(),
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
                    progress_at=_now(),
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

    def resources(self, saga_id: str) -> dict[str, str]:
        """Resource name -> the step that created it."""
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


# A ledger that does not answer must not hang its callers (`report-pipeline status`, each scrape of
# `/metrics`, a step's bookkeeping): libpq gives up connecting after CONNECT_TIMEOUT_SECONDS, and the
# server cancels any statement running longer than STATEMENT_TIMEOUT_SECONDS. The ledger's statements
# take milliseconds, so either limit means something is wrong; waits that are the point (a saga's
# advisory lock in `exclusive`, the migration lock and the migration itself) lift the statement timeout
# for their own transaction. A URL that sets `connect_timeout` or `options=-c statement_timeout=...`
# itself wins over these.
CONNECT_TIMEOUT_SECONDS = 5
STATEMENT_TIMEOUT_SECONDS = 30


def _postgres_connect_args(url: sa.URL) -> dict[str, Any]:
    if url.get_backend_name() != "postgresql" or url.get_driver_name() not in (
        "psycopg2",
        "psycopg",
    ):
        return {}
    args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    own = url.query.get("options", ())
    # the URL's own options come last: PostgreSQL applies the last setting of a name
    args["options"] = " ".join(
        [
            f"-c statement_timeout={STATEMENT_TIMEOUT_SECONDS}s",
            *([own] if isinstance(own, str) else own),
        ]
    )
    return args


def installed_version(connection: sa.Connection) -> int:
    """The ledger's schema version in this database; 0 while no saga has created its tables yet."""
    if not sa.inspect(connection).has_table(schema_version.name):
        return 0
    return connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0


def describe_failure(url: sa.URL, error: BaseException) -> str:
    """One line saying the ledger could not be read and why, never the URL's password."""
    reason = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else type(reason).__name__
    if url.password:
        text = text.replace(str(url.password), "***")
    where = (
        url.database
        if url.get_backend_name() == "sqlite"
        else f"{url.host}:{url.port or 5432}/{url.database}"
    )
    return f"cannot read the saga ledger at {where}: {text}"
