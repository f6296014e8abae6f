"""The ledger database's tables, for every store, and the one path that creates and upgrades them.

The saga ledger's tables (`sagas`, `saga_step_attempts`, `saga_transitions`, `saga_resources`,
`saga_runs`), the sweeper's records (`saga_sweeper_sightings`, `saga_sweeps`), the alert outbox
(`saga_alerts`), the metric totals (`saga_metric_totals`) and the schema version all live in one
database and are migrated together, by `migrate()`, under an advisory lock on PostgreSQL. Each store
reads and writes only its own tables, except where a question spans two (which sagas are still owed
an alert; the metrics' sums over the saga tables).
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from report_pipeline.storage.datetimes import utc_now

metadata = sa.MetaData()


# --- the saga ledger (saga/ledger.py) -------------------------------------------------------------
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
    # the attempts not yet in the totals: the only ones a scrape aggregates (a few, once folding
    # keeps up)
    sa.Index(
        "ix_saga_step_attempts_unfolded",
        "id",
        postgresql_where=sa.text("metrics_fold IS NULL"),
        sqlite_where=sa.text("metrics_fold IS NULL"),
    ),
)

# The saga's end states (saga.model.TERMINAL_STATES) as version 4 wrote them into the partial index
# below. Written out, not derived: an index, once created, does not follow the code (another end
# state would need a migration); a test checks that they still agree.
_UNFOLDED_ENDINGS = (
    "metrics_fold IS NULL AND new_state IN ('COMPENSATED', 'FAILED_NEEDS_MANUAL', 'SUCCEEDED')"
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


# --- the scratch sweeper's records (orchestration/sweeper_records.py) -----------------------------
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


# --- the alert outbox (alerting/outbox.py) --------------------------------------------------------
alerts = sa.Table(
    "saga_alerts",
    metadata,
    sa.Column("alert_key", sa.String(256), primary_key=True),  # one alert per saga outcome, ever
    sa.Column("saga_id", sa.String(64)),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # an AlertStatus
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
)


# --- the metric totals (observability/metrics.py) -------------------------------------------------
# version 4: what every finished step attempt and every ending has added to the exported metrics,
# so a scrape reads these few rows plus the rows not folded in yet instead of the whole history. One
# row per sample: (family, report, step or error name, status, sample) -> value, where sample is
# `count`, `sum` or a histogram bucket `le=<bound>`. Written only by `report-pipeline metrics`.
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


# --- the schema -----------------------------------------------------------------------------------
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
    """The metric totals, the marks of what they hold, and the indexes a scrape reads through; only
    what is missing, so a ledger that has some of it already is upgraded as well."""
    bind = operations.get_bind()
    inspector = sa.inspect(bind)
    for table in (step_attempts, transitions):
        if "metrics_fold" not in {column["name"] for column in inspector.get_columns(table.name)}:
            operations.add_column(table.name, sa.Column("metrics_fold", sa.BigInteger))
    for table in (sagas, step_attempts, transitions):
        present = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if (
                index.name
                in (
                    "ix_sagas_name_state",
                    "ix_saga_step_attempts_unfolded",
                    "ix_saga_transitions_unfolded",
                )
                and index.name not in present
            ):
                index.create(bind)
    metric_totals.create(bind, checkfirst=True)


MIGRATIONS: list[tuple[int, Callable[[Operations], None]]] = [
    (2, _v2_statement_stats_and_progress),
    (3, _v3_interrupted_steps),
    (4, _v4_metric_totals),
]
LATEST_VERSION = max(version for version, _ in MIGRATIONS)
MIGRATION_LOCK = 0x5A6A_1ED6  # advisory lock key shared by every process that migrates


def migrate(engine: sa.Engine) -> int:
    """Create or upgrade every store's tables; safe to call from many processes at once."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # waiting for another process's migration, and migrating a long history, must not time
            # out
            connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
            )
        inspector = sa.inspect(connection)
        if not inspector.has_table(schema_version.name):
            metadata.create_all(connection)
            connection.execute(
                schema_version.insert().values(version=LATEST_VERSION, applied_at=utc_now())
            )
            return LATEST_VERSION
        current = installed_version(connection)
        operations = Operations(MigrationContext.configure(connection))
        for version, upgrade in MIGRATIONS:
            if version > current:
                upgrade(operations)
                connection.execute(
                    schema_version.insert().values(version=version, applied_at=utc_now())
                )
                current = version
        return current


def installed_version(connection: sa.Connection) -> int:
    """The schema version in this database; 0 while no saga has created the tables yet."""
    if not sa.inspect(connection).has_table(schema_version.name):
        return 0
    return connection.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
