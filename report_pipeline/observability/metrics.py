"""Prometheus metrics computed from the saga ledger at each scrape.

Saga steps run in short-lived processes (one per Dagster step, on any machine), and every one of
them already writes what it did to the ledger in PostgreSQL. So the exporter keeps no state of its
own: each scrape reads the ledger. Counters count facts that are never rewritten (transitions into
an end state, finished step attempts, settled alerts), so they do not go backwards when any process
restarts, and any number of exporters give the same figures.

The history is summed once, in the ledger: each scrape first folds the step attempts that finished
and the endings recorded since the last one into `saga_metric_totals` (marking them folded in the
same transaction), then reads those totals plus the rows not folded yet, in one snapshot. Only
unfolded rows are indexed for that (partial indexes), so a scrape costs about the same at 10^6
attempts as at 10^3. A ledger whose tables do not exist yet (no saga has run) is an empty one.

Label values are bounded: report and step names come from the report specs, states and outcomes
from fixed sets, and error names are Trino's error codes (anything else is reported as OTHER).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy.dialects import postgresql, sqlite

from report_pipeline import settings
from report_pipeline.alerting.outbox import AlertTally, alert_tallies
from report_pipeline.observability.trino_error_names import error_label
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import TERMINAL_STATES, AttemptKind, AttemptStatus, SagaState
from report_pipeline.storage.datetimes import as_utc
from report_pipeline.storage.engine import describe_failure
from report_pipeline.storage.schema import (
    installed_version,
    metric_totals,
    sagas,
    step_attempts,
    transitions,
)

# The buckets are summed into saga_metric_totals as they are: changing one needs a ledger migration
# that empties the totals and the `metrics_fold` marks, so that the history is folded again.
SAGA_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800)
STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
QUEUED_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# The documented default lives with the setting; the collector takes the same when given none.
DEFAULT_STUCK_AFTER_SECONDS = settings.STUCK_AFTER_SECONDS.parse_text(
    settings.STUCK_AFTER_SECONDS.default or ""
)
# Rows of each kind one fold (one transaction) takes: far more than finish between two scrapes. A
# backlog (the history of a ledger just upgraded to version 4) is folded over several scrapes, each
# folding for about FOLD_SECONDS; until then those scrapes also sum the rows still unfolded, as
# before version 4.
FOLD_CHUNK = 10_000
FOLD_SECONDS = 1.0
FOLDING_VERSION = 4  # the ledger version with saga_metric_totals
_FOLD_LOCK = 0x5A6A_F01D  # advisory lock key: one exporter folds at a time, the others skip
_TERMINAL = [s.value for s in TERMINAL_STATES]
_LIVE = [s.value for s in SagaState if not s.terminal]
_ATTEMPT_OUTCOMES = (AttemptStatus.SUCCEEDED.value, AttemptStatus.FAILED.value)

log = logging.getLogger(__name__)


class Sample(NamedTuple):
    """One sample of the history's families, as saga_metric_totals sums it."""

    family: str
    saga_name: str
    label: str  # the step or error name, or ""
    status: str  # the end state or attempt outcome, or ""
    sample: str  # count, sum, or a histogram bucket le=<bound>


Tallies = dict[Sample, float]


@dataclass
class _Reading:
    """What one scrape read from the ledger."""

    history: Tallies = field(default_factory=dict)
    states: dict[str, dict[str, int]] = field(default_factory=dict)  # report -> state -> sagas
    # report, created, last sign of life
    active: list[tuple[str, dt.datetime, dt.datetime]] = field(default_factory=list)
    alerts: list[AlertTally] = field(default_factory=list)


class LedgerCollector(Collector):
    """Yields every metric family on each scrape (families without samples too, so names are
    stable)."""

    def __init__(self, ledger: SqlLedger, stuck_after_seconds: float = DEFAULT_STUCK_AFTER_SECONDS):
        self.ledger = ledger
        self.stuck_after = dt.timedelta(seconds=stuck_after_seconds)
        self.failure: str | None = None  # why the last scrape could not read the ledger
        self._fold_failure: str | None = None

    def describe(self) -> Iterable[Metric]:
        return []  # collected only on scrape: registering must not query the ledger

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily(
            "saga_ledger_up", "1 if the last scrape could read the saga ledger, else 0"
        )
        try:
            reading = self._read()
        except sa.exc.SQLAlchemyError as error:
            self._failed(describe_failure(self.ledger.engine.url, error))
            up.add_metric([], 0)
            families = []
        else:
            self._failed(None)
            up.add_metric([], 1)
            families = self._families(reading)
        yield from families
        yield up
        duration = GaugeMetricFamily(
            "saga_ledger_scrape_duration_seconds", "Time the last scrape spent in the ledger"
        )
        duration.add_metric([], time.monotonic() - started)
        yield duration

    def _failed(self, failure: str | None) -> None:
        """Log a failure once (a scrape every 15 s of a down ledger is one line), and the
        recovery."""
        if failure and failure != self.failure:
            log.warning("%s", failure)
        elif failure is None and self.failure:
            log.warning("the saga ledger can be read again")
        self.failure = failure

    def _read(self) -> _Reading:
        reading = _Reading()
        with self.ledger.engine.connect() as connection:
            version = installed_version(connection)
            connection.rollback()
            if version == 0:
                return reading  # no saga has run yet: an empty ledger
            if version >= FOLDING_VERSION:
                self._fold(connection)
            if connection.dialect.name == "postgresql":
                # the totals and the rows not folded into them as of one moment, whatever folds
                # meanwhile
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    _no_jit(connection)
                reading.history = history(connection, version)
                reading.states = _saga_states(connection)
                reading.active = list(_active_sagas(connection))
                reading.alerts = alert_tallies(connection)
        return reading

    def _fold(self, connection: sa.Connection) -> None:
        deadline = time.monotonic() + FOLD_SECONDS
        try:
            while fold(connection, FOLD_CHUNK) == FOLD_CHUNK and time.monotonic() < deadline:
                pass
        except sa.exc.SQLAlchemyError as error:
            # the scrape still answers, from the unfolded rows (slower as they pile up): say so once
            failure = (
                f"{describe_failure(self.ledger.engine.url, error)} "
                f"(folding into {metric_totals.name})"
            )
            if failure != self._fold_failure:
                log.warning("%s", failure)
            self._fold_failure = failure
            connection.rollback()
        else:
            self._fold_failure = None

    def _families(self, reading: _Reading) -> list[Metric]:
        history = _by_labels(reading.history)
        return [
            self._executions(reading, history),
            *self._durations(history),
            self._compensations(history),
            *self._saga_states(reading),
            *self._trino_statements(history),
            *self._alerts(reading),
        ]

    # --- sagas ----------------------------------------------------------------------------------
    @staticmethod
    def _executions(reading: _Reading, history: dict[str, dict]) -> Metric:
        family = CounterMetricFamily(
            "saga_executions",
            "Saga executions that ended, by final state",
            labels=["saga_name", "status"],
        )
        # every outcome of every known report from zero, so the first failure is an increase to
        # alert on
        counts = {(name, state): 0.0 for name in reading.states for state in _TERMINAL}
        for (saga_name, _, state), samples in history["saga_executions"].items():
            counts[saga_name, state] = samples["count"]
        for (saga_name, state), count in sorted(counts.items()):
            family.add_metric([saga_name, state.lower()], count)
        return family

    @staticmethod
    def _durations(history: dict[str, dict]) -> Iterator[Metric]:
        yield _histogram(
            history,
            "saga_duration_seconds",
            "Wall time of saga executions from start (or re-execution) to their end state",
            ["saga_name", "status"],
            SAGA_BUCKETS,
        )
        yield _histogram(
            history,
            "saga_step_duration_seconds",
            "Duration of each attempt at a step's action",
            ["saga_name", "step_name", "status"],
            STEP_BUCKETS,
        )

    @staticmethod
    def _compensations(history: dict[str, dict]) -> Metric:
        family = CounterMetricFamily(
            "saga_compensations",
            "Attempts to undo a step, by outcome",
            labels=["saga_name", "step_name", "outcome"],
        )
        counts = {
            (name, step, outcome): 0.0
            for name, step, _ in history["saga_steps"]
            for outcome in _ATTEMPT_OUTCOMES
        }
        for (saga_name, step, status), samples in history["saga_compensations"].items():
            counts[saga_name, step, status] = samples["count"]
        for (saga_name, step, status), count in sorted(counts.items()):
            family.add_metric([saga_name, step, status.lower()], count)
        return family

    def _saga_states(self, reading: _Reading) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            "saga_sagas", "Sagas in each state now", labels=["saga_name", "state"]
        )
        for saga_name, states in sorted(reading.states.items()):
            for state, count in states.items():
                by_state.add_metric([saga_name, state], count)
        yield by_state

        stuck = GaugeMetricFamily(
            "saga_stuck_sagas",
            "Sagas not in an end state that have shown no sign of life (a transition, a step "
            f"attempt, query progress) for {self.stuck_after.total_seconds():.0f}s",
            labels=["saga_name"],
        )
        oldest = GaugeMetricFamily(
            "saga_oldest_active_age_seconds",
            "Age of the oldest saga not in an end state",
            labels=["saga_name"],
        )
        now = dt.datetime.now(dt.UTC)
        stuck_counts: dict[str, int] = dict.fromkeys(reading.states, 0)
        oldest_age: dict[str, float] = dict.fromkeys(reading.states, 0.0)
        for saga_name, created_at, last_activity in reading.active:
            oldest_age[saga_name] = max(
                oldest_age.get(saga_name, 0.0), (now - created_at).total_seconds()
            )
            if now - last_activity > self.stuck_after:
                stuck_counts[saga_name] = stuck_counts.get(saga_name, 0) + 1
        for saga_name in sorted(stuck_counts):
            stuck.add_metric([saga_name], stuck_counts[saga_name])
            oldest.add_metric([saga_name], oldest_age[saga_name])
        yield stuck
        yield oldest

    # --- Trino statements -----------------------------------------------------------------------
    @staticmethod
    def _trino_statements(history: dict[str, dict]) -> Iterator[Metric]:
        yield _histogram(
            history,
            "saga_trino_queued_seconds",
            "Time a step attempt's statements waited in Trino's queue",
            ["saga_name"],
            QUEUED_BUCKETS,
        )
        rows_family = CounterMetricFamily(
            "saga_trino_rows",
            "Rows written or returned by step statements",
            labels=["saga_name", "step_name"],
        )
        bytes_family = CounterMetricFamily(
            "saga_trino_processed_bytes",
            "Bytes Trino read for step statements",
            labels=["saga_name", "step_name"],
        )
        for family in (rows_family, bytes_family):
            for (saga_name, step, _), samples in sorted(history[family.name].items()):
                family.add_metric([saga_name, step], samples["sum"])
        yield rows_family
        yield bytes_family

        errors = CounterMetricFamily(
            "saga_trino_errors",
            "Failed step attempts, by the error Trino (or the client) named",
            labels=["saga_name", "error_name"],
        )
        for (saga_name, name, _), samples in sorted(history["saga_trino_errors"].items()):
            errors.add_metric([saga_name, name], samples["count"])
        yield errors

    # --- alerts ---------------------------------------------------------------------------------
    @staticmethod
    def _alerts(reading: _Reading) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "saga_alert_deliveries",
            "Alerts settled, by outcome (delivered to the "
            "webhook, logged for want of one, or given up)",
            labels=["kind", "outcome"],
        )
        attempts = CounterMetricFamily(
            "saga_alert_delivery_attempts",
            "Attempts to post alerts to the webhook",
            labels=["kind"],
        )
        pending = GaugeMetricFamily(
            "saga_alerts_pending", "Alerts waiting to be delivered", labels=["kind"]
        )
        totals: dict[str, int] = defaultdict(int)
        waiting: dict[str, int] = defaultdict(int)
        for tally in reading.alerts:
            totals[tally.kind] += tally.attempts
            if tally.status.settled:
                deliveries.add_metric([tally.kind, tally.status.value], tally.alerts)
            else:
                waiting[tally.kind] += tally.alerts
        for kind in sorted(totals):
            attempts.add_metric([kind], totals[kind])
            pending.add_metric([kind], waiting[kind])
        yield deliveries
        yield attempts
        yield pending


# --- the history: summed once into saga_metric_totals ---------------------------------------------
def fold(connection: sa.Connection, chunk: int = FOLD_CHUNK) -> int:
    """Add up to `chunk` finished step attempts and as many endings not folded yet to
    saga_metric_totals, marking them folded, in one transaction. How many rows of the fuller kind it
    folded (`chunk`: there may be more); 0 if another exporter is folding now."""
    with connection.begin():
        if connection.dialect.name == "postgresql":
            if not connection.execute(
                sa.select(sa.func.pg_try_advisory_xact_lock(_FOLD_LOCK))
            ).scalar():
                return 0
            _no_jit(connection)
        fold_id = secrets.randbits(62) + 1
        attempts, folded_attempts = _mark_folded(
            connection, step_attempts, step_attempts.c.ended_at.is_not(None), chunk, fold_id
        )
        endings, folded_endings = _mark_folded(
            connection, transitions, transitions.c.new_state.in_(_TERMINAL), chunk, fold_id
        )
        if attempts or endings:
            _add_to_totals(connection, _tally(connection, folded_attempts, folded_endings))
        return max(attempts, endings)


def history(connection: sa.Connection, version: int) -> Tallies:
    """The history's samples: the totals plus the rows not folded into them (every row, on a ledger
    older than version 4, which a step's process upgrades when it next runs)."""
    if version < FOLDING_VERSION:
        return _tally(connection, sa.true(), sa.true())
    tallies: Tallies = {
        Sample(*row[:-1]): row[-1]
        for row in connection.execute(
            sa.select(
                metric_totals.c.family,
                metric_totals.c.saga_name,
                metric_totals.c.label,
                metric_totals.c.status,
                metric_totals.c.sample,
                metric_totals.c.value,
            )
        )
    }
    unfolded = _tally(
        connection, step_attempts.c.metrics_fold.is_(None), transitions.c.metrics_fold.is_(None)
    )
    for key, value in unfolded.items():
        tallies[key] = tallies.get(key, 0.0) + value
    return tallies


def _no_jit(connection: sa.Connection) -> None:
    # PostgreSQL's estimates for the partial indexes can be far too high (rows folded since the last
    # ANALYZE), and compiling a plan it thinks costly takes longer than running these small queries
    connection.execute(sa.text("SET LOCAL jit = off"))


def _mark_folded(
    connection: sa.Connection, table: sa.Table, condition: Any, chunk: int, fold_id: int
) -> tuple[int, Any]:
    """Mark up to `chunk` of the oldest unfolded rows meeting `condition` as folded by `fold_id`:
    how many, and a condition that selects exactly them through the primary key (the id range they
    span)."""
    unfolded = (table.c.metrics_fold.is_(None), condition)
    oldest = sa.select(table.c.id).where(*unfolded).order_by(table.c.id).limit(chunk)
    ids = (
        connection.execute(
            table.update()
            .where(table.c.id.in_(oldest), *unfolded)
            .values(metrics_fold=fold_id)
            .returning(table.c.id)
        )
        .scalars()
        .all()
    )
    if not ids:
        return 0, sa.false()
    return len(ids), sa.and_(
        table.c.id.between(min(ids), max(ids)), table.c.metrics_fold == fold_id
    )


def _add_to_totals(connection: sa.Connection, tallies: Tallies) -> None:
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
        metric_totals
    )
    upsert = insert.on_conflict_do_update(
        index_elements=list(metric_totals.primary_key.columns),
        set_={"value": metric_totals.c.value + insert.excluded.value},
    )
    # in key order, so that two writers could never wait on each other's rows in a cycle
    connection.execute(
        upsert, [{**key._asdict(), "value": value} for key, value in sorted(tallies.items())]
    )


def _tally(connection: sa.Connection, attempts: Any, endings: Any) -> Tallies:
    """The history's samples over the step attempts and the transitions the conditions select."""
    tallies: Tallies = {}
    seconds = _seconds_between(connection.dialect.name)

    def add(
        family: str, saga_name: str, label: str, status: str, sample: str, value: float
    ) -> None:
        key = Sample(family, saga_name, label or "", status or "", sample)
        tallies[key] = tallies.get(key, 0.0) + float(value)

    ended = _ended_executions(endings, seconds)
    for saga_name, state, count in connection.execute(
        sa.select(ended.c.saga_name, ended.c.status, sa.func.count()).group_by(
            ended.c.saga_name, ended.c.status
        )
    ):
        add("saga_executions", saga_name, "", state, "count", count)
    _tally_histogram(connection, add, "saga_duration_seconds", ended, SAGA_BUCKETS)

    a = step_attempts.c
    finished = a.ended_at.is_not(None)

    def of_attempts(*columns: Any) -> sa.Select:
        return (
            sa.select(sagas.c.saga_name, *columns)
            .join(sagas, sagas.c.saga_id == a.saga_id)
            .where(attempts)
        )

    # every step with an attempt: its compensations are exported from 0
    for saga_name, step, count in connection.execute(
        of_attempts(a.step, sa.func.count()).group_by(sagas.c.saga_name, a.step)
    ):
        add("saga_steps", saga_name, step, "", "count", count)
    _tally_histogram(
        connection,
        add,
        "saga_step_duration_seconds",
        of_attempts(
            a.step.label("label"),
            a.status.label("status"),
            seconds(a.started_at, a.ended_at).label("seconds"),
        )
        .where(a.kind == AttemptKind.ACTION.value, a.attempt > 0, finished)
        .subquery(),
        STEP_BUCKETS,
    )
    for saga_name, step, status, count in connection.execute(
        of_attempts(a.step, a.status, sa.func.count())
        .where(a.kind == AttemptKind.COMPENSATION.value, finished)
        .group_by(sagas.c.saga_name, a.step, a.status)
    ):
        add("saga_compensations", saga_name, step, status, "count", count)

    statement = (finished, a.query_id.is_not(None))
    _tally_histogram(
        connection,
        add,
        "saga_trino_queued_seconds",
        of_attempts(
            sa.literal("", sa.String).label("label"),
            sa.literal("", sa.String).label("status"),
            a.queued_seconds.label("seconds"),
        )
        .where(*statement)
        .subquery(),
        QUEUED_BUCKETS,
    )
    for saga_name, step, rows, processed in connection.execute(
        of_attempts(
            a.step,
            sa.func.coalesce(sa.func.sum(a.rows), 0),
            sa.func.coalesce(sa.func.sum(a.bytes), 0),
        )
        .where(*statement, a.status == AttemptStatus.SUCCEEDED.value)
        .group_by(sagas.c.saga_name, a.step)
    ):
        add("saga_trino_rows", saga_name, step, "", "sum", rows)
        add("saga_trino_processed_bytes", saga_name, step, "", "sum", processed)
    for saga_name, error_name, count in connection.execute(
        of_attempts(a.error_name, sa.func.count())
        .where(a.status == AttemptStatus.FAILED.value)
        .group_by(sagas.c.saga_name, a.error_name)
    ):
        add("saga_trino_errors", saga_name, error_label(error_name), "", "count", count)
    return tallies


def _ended_executions(endings: Any, seconds: Any) -> Any:
    """Each time a saga (or a re-execution of it) reached an end state from a live one: its report,
    end state and duration since the saga's latest move to RUNNING before it."""
    began = transitions.alias("began")
    start = (
        sa.select(sa.func.max(began.c.at))
        .where(
            began.c.saga_id == transitions.c.saga_id,
            began.c.new_state == SagaState.RUNNING.value,
            began.c.id < transitions.c.id,
        )
        .scalar_subquery()
    )
    return (
        sa.select(
            sagas.c.saga_name,
            sa.literal("", sa.String).label("label"),
            transitions.c.new_state.label("status"),
            seconds(start, transitions.c.at).label("seconds"),
        )
        .join(sagas, sagas.c.saga_id == transitions.c.saga_id)
        .where(
            transitions.c.new_state.in_(_TERMINAL),
            endings,
            sa.or_(transitions.c.old_state.is_(None), transitions.c.old_state.not_in(_TERMINAL)),
        )
        # OFFSET 0: computed once per row (else the start lookup is inlined into every bucket's sum)
        .offset(0)
        .subquery()
    )


def _tally_histogram(
    connection: sa.Connection, add: Any, family: str, source: Any, buckets: Sequence[float]
) -> None:
    """Count, sum and cumulative buckets of `source.seconds` by report, label and status, in the
    database."""
    seconds = source.c.seconds
    labels = [source.c.saga_name, source.c.label, source.c.status]
    cumulative = [sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in buckets]
    query = (
        sa.select(
            *labels, sa.func.count(), sa.func.coalesce(sa.func.sum(seconds), 0.0), *cumulative
        )
        .where(seconds.is_not(None))
        .group_by(*labels)
    )
    for saga_name, label, status, count, total, *counts in connection.execute(query):
        add(family, saga_name, label, status, "count", count)
        add(family, saga_name, label, status, "sum", total)
        for bound, count_le in zip(buckets, counts, strict=True):
            add(family, saga_name, label, status, f"le={_bound(bound)}", count_le)


def _by_labels(tallies: Tallies) -> dict[str, dict[tuple[str, str, str], dict[str, float]]]:
    """family -> (report, label, status) -> sample -> value."""
    grouped: dict[str, dict[tuple[str, str, str], dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for key, value in tallies.items():
        grouped[key.family][key.saga_name, key.label, key.status][key.sample] = value
    return grouped


def _histogram(
    history: dict[str, dict],
    name: str,
    documentation: str,
    labels: list[str],
    buckets: Sequence[float],
) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=labels)
    for (saga_name, label, status), samples in sorted(history[name].items()):
        values = {"saga_name": saga_name, "step_name": label, "status": status.lower()}
        family.add_metric(
            [values[label_name] for label_name in labels],
            [(_bound(b), samples.get(f"le={_bound(b)}", 0.0)) for b in buckets]
            + [("+Inf", samples["count"])],
            samples["sum"],
        )
    return family


# --- live figures ---------------------------------------------------------------------------------
def _saga_states(connection: sa.Connection) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys((s.value for s in SagaState), 0)
    )
    for saga_name, state, count in connection.execute(
        sa.select(sagas.c.saga_name, sagas.c.state, sa.func.count()).group_by(
            sagas.c.saga_name, sagas.c.state
        )
    ):
        counts[saga_name][state] = count
    return dict(counts)


def _active_sagas(connection: sa.Connection) -> Iterator[tuple[str, dt.datetime, dt.datetime]]:
    """Each live saga's report, start and last sign of life, found through the index on state."""

    def latest(column: Any) -> Any:
        return (
            sa.select(sa.func.max(column))
            .where(step_attempts.c.saga_id == sagas.c.saga_id)
            .scalar_subquery()
        )

    rows = connection.execute(
        sa.select(
            sagas.c.saga_name,
            sagas.c.created_at,
            sagas.c.updated_at,
            latest(step_attempts.c.started_at),
            latest(step_attempts.c.ended_at),
            latest(step_attempts.c.progress_at),
        ).where(sagas.c.state.in_(_LIVE))
    )
    for saga_name, created_at, *moments in rows:
        yield saga_name, as_utc(created_at), max(as_utc(m) for m in moments if m is not None)


def _bound(value: float) -> str:
    return str(float(value))


def _seconds_between(dialect: str) -> Any:
    if dialect == "postgresql":
        return lambda start, end: sa.cast(sa.func.extract("epoch", end - start), sa.Float)
    return lambda start, end: (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def serve_metrics(
    ledger: SqlLedger, host: str, port: int, stuck_after_seconds: float, stop: Any
) -> None:
    """Serve /metrics until `stop` (a threading.Event) is set."""
    from prometheus_client import (
        CollectorRegistry,
        PlatformCollector,
        ProcessCollector,
        start_http_server,
    )

    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(ledger, stuck_after_seconds))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        stop.wait()
    finally:
        server.shutdown()
        thread.join(timeout=5)
