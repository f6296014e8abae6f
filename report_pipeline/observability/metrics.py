"""Prometheus metrics computed from the saga ledger at each scrape.

Saga steps run in short-lived processes (one per Dagster step, on any machine), and every one of
them already writes what it did to the ledger in PostgreSQL. So the exporter keeps no state of its
own: each scrape aggregates the ledger in SQL. Counters count facts that are never rewritten
(transitions into an end state, finished step attempts, settled alerts), so they do not go
backwards when any process restarts, and any number of exporters give the same figures.

Label values are bounded: report and step names come from the report specs, states and outcomes
from fixed sets, and error names are Trino's error codes (anything else is reported as OTHER).
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from report_pipeline.saga.ledger import SqlLedger, alerts, sagas, step_attempts, transitions
from report_pipeline.saga.model import TERMINAL_STATES, AttemptKind, AttemptStatus, SagaState

SAGA_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800)
STEP_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
QUEUED_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
DEFAULT_STUCK_AFTER_SECONDS = 900
_ERROR_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_TERMINAL = [s.value for s in TERMINAL_STATES]
_ALERT_OUTCOMES = ("delivered", "logged", "failed")
_ATTEMPT_OUTCOMES = (AttemptStatus.SUCCEEDED.value, AttemptStatus.FAILED.value)


class LedgerCollector(Collector):
    """Yields every metric family on each scrape (families without samples too, so names are stable)."""

    def __init__(self, ledger: SqlLedger, stuck_after_seconds: float = DEFAULT_STUCK_AFTER_SECONDS):
        self.ledger = ledger
        self.stuck_after = dt.timedelta(seconds=stuck_after_seconds)

    def describe(self) -> Iterable[Metric]:
        return []   # collected only on scrape: registering must not query the ledger

    def collect(self) -> Iterator[Metric]:
        started = time.monotonic()
        up = GaugeMetricFamily("saga_ledger_up", "1 if the last scrape could read the saga ledger, else 0")
        try:
            with self.ledger.engine.connect() as connection:
                families = list(self._families(connection))
        except sa.exc.SQLAlchemyError:
            up.add_metric([], 0)
            families = []
        else:
            up.add_metric([], 1)
        yield from families
        yield up
        duration = GaugeMetricFamily("saga_ledger_scrape_duration_seconds", "Time the last scrape spent in the ledger")
        duration.add_metric([], time.monotonic() - started)
        yield duration

    def _families(self, connection: sa.Connection) -> Iterator[Metric]:
        seconds = _seconds_between(connection.dialect.name)
        yield self._executions(connection)
        yield self._saga_durations(connection, seconds)
        yield self._step_durations(connection, seconds)
        yield self._compensations(connection)
        yield from self._saga_states(connection)
        yield from self._trino_statements(connection)
        yield from self._alerts(connection)

    # --- sagas ----------------------------------------------------------------------------------
    @staticmethod
    def _ended_executions() -> Any:
        """Each time a saga (or a re-execution of it) reached an end state from a live one."""
        return (sa.select(transitions.c.id, transitions.c.saga_id, transitions.c.new_state, transitions.c.at,
                          sagas.c.saga_name)
                .join(sagas, sagas.c.saga_id == transitions.c.saga_id)
                .where(transitions.c.new_state.in_(_TERMINAL),
                       sa.or_(transitions.c.old_state.is_(None), transitions.c.old_state.not_in(_TERMINAL))))

    def _executions(self, connection: sa.Connection) -> Metric:
        family = CounterMetricFamily("saga_executions", "Saga executions that ended, by final state",
                                     labels=["saga_name", "status"])
        # every outcome of every known report from zero, so the first failure is an increase to alert on
        counts = {(name, state.value): 0 for name in _saga_names(connection) for state in TERMINAL_STATES}
        ended = self._ended_executions().subquery()
        for saga_name, state, count in connection.execute(
                sa.select(ended.c.saga_name, ended.c.new_state, sa.func.count())
                .group_by(ended.c.saga_name, ended.c.new_state)):
            counts[saga_name, state] = count
        for (saga_name, state), count in sorted(counts.items()):
            family.add_metric([saga_name, state.lower()], count)
        return family

    def _saga_durations(self, connection: sa.Connection, seconds: Any) -> Metric:
        ended = self._ended_executions().subquery()
        began = transitions.alias("began")
        # an execution starts at the saga's latest move to RUNNING before its end
        start = (sa.select(sa.func.max(began.c.at))
                 .where(began.c.saga_id == ended.c.saga_id, began.c.new_state == SagaState.RUNNING.value,
                        began.c.id < ended.c.id).scalar_subquery())
        durations = sa.select(ended.c.saga_name.label("saga_name"), ended.c.new_state.label("status"),
                              seconds(start, ended.c.at).label("seconds")).subquery()
        return _histogram(connection, "saga_duration_seconds",
                          "Wall time of saga executions from start (or re-execution) to their end state",
                          durations, ["saga_name", "status"], SAGA_BUCKETS, lower=("status",))

    def _step_durations(self, connection: sa.Connection, seconds: Any) -> Metric:
        durations = (sa.select(sagas.c.saga_name.label("saga_name"), step_attempts.c.step.label("step_name"),
                               step_attempts.c.status.label("status"),
                               seconds(step_attempts.c.started_at, step_attempts.c.ended_at).label("seconds"))
                     .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id)
                     .where(step_attempts.c.kind == AttemptKind.ACTION.value, step_attempts.c.attempt > 0,
                            step_attempts.c.ended_at.is_not(None))
                     .subquery())
        return _histogram(connection, "saga_step_duration_seconds", "Duration of each attempt at a step's action",
                          durations, ["saga_name", "step_name", "status"], STEP_BUCKETS, lower=("status",))

    def _compensations(self, connection: sa.Connection) -> Metric:
        family = CounterMetricFamily("saga_compensations", "Attempts to undo a step, by outcome",
                                     labels=["saga_name", "step_name", "outcome"])
        steps = connection.execute(sa.select(sagas.c.saga_name, step_attempts.c.step).distinct()
                                   .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id))
        counts = {(name, step, outcome): 0 for name, step in steps for outcome in _ATTEMPT_OUTCOMES}
        for saga_name, step, status, count in connection.execute(
                sa.select(sagas.c.saga_name, step_attempts.c.step, step_attempts.c.status, sa.func.count())
                .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id)
                .where(step_attempts.c.kind == AttemptKind.COMPENSATION.value, step_attempts.c.ended_at.is_not(None))
                .group_by(sagas.c.saga_name, step_attempts.c.step, step_attempts.c.status)):
            counts[saga_name, step, status] = count
        for (saga_name, step, status), count in sorted(counts.items()):
            family.add_metric([saga_name, step, status.lower()], count)
        return family

    def _saga_states(self, connection: sa.Connection) -> Iterator[Metric]:
        by_state = GaugeMetricFamily("saga_sagas", "Sagas in each state now", labels=["saga_name", "state"])
        counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys((s.value for s in SagaState), 0))
        for saga_name, state, count in connection.execute(
                sa.select(sagas.c.saga_name, sagas.c.state, sa.func.count()).group_by(sagas.c.saga_name, sagas.c.state)):
            counts[saga_name][state] = count
        for saga_name, states in sorted(counts.items()):
            for state, count in states.items():
                by_state.add_metric([saga_name, state], count)
        yield by_state

        stuck = GaugeMetricFamily(
            "saga_stuck_sagas",
            f"Sagas not in an end state that have shown no sign of life (a transition, a step attempt, query "
            f"progress) for {self.stuck_after.total_seconds():.0f}s", labels=["saga_name"])
        oldest = GaugeMetricFamily("saga_oldest_active_age_seconds",
                                   "Age of the oldest saga not in an end state", labels=["saga_name"])
        now = dt.datetime.now(dt.timezone.utc)
        stuck_counts: dict[str, int] = dict.fromkeys(counts, 0)
        oldest_age: dict[str, float] = dict.fromkeys(counts, 0.0)
        for saga_name, created_at, last_activity in self._active_sagas(connection):
            oldest_age[saga_name] = max(oldest_age[saga_name], (now - created_at).total_seconds())
            if now - last_activity > self.stuck_after:
                stuck_counts[saga_name] += 1
        for saga_name in sorted(counts):
            stuck.add_metric([saga_name], stuck_counts[saga_name])
            oldest.add_metric([saga_name], oldest_age[saga_name])
        yield stuck
        yield oldest

    @staticmethod
    def _active_sagas(connection: sa.Connection) -> Iterator[tuple[str, dt.datetime, dt.datetime]]:
        activity = (sa.select(step_attempts.c.saga_id,
                              sa.func.max(step_attempts.c.started_at).label("started"),
                              sa.func.max(step_attempts.c.ended_at).label("ended"),
                              sa.func.max(step_attempts.c.progress_at).label("progress"))
                    .group_by(step_attempts.c.saga_id).subquery())
        rows = connection.execute(
            sa.select(sagas.c.saga_name, sagas.c.created_at, sagas.c.updated_at, activity.c.started,
                      activity.c.ended, activity.c.progress)
            .outerjoin(activity, activity.c.saga_id == sagas.c.saga_id)
            .where(sagas.c.state.not_in(_TERMINAL)))
        for saga_name, created_at, *moments in rows:
            yield saga_name, _utc(created_at), max(_utc(m) for m in moments if m is not None)

    # --- Trino statements -----------------------------------------------------------------------
    def _trino_statements(self, connection: sa.Connection) -> Iterator[Metric]:
        finished = (step_attempts.c.ended_at.is_not(None), step_attempts.c.query_id.is_not(None))
        queued = (sa.select(sagas.c.saga_name.label("saga_name"), step_attempts.c.queued_seconds.label("seconds"))
                  .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id)
                  .where(*finished, step_attempts.c.queued_seconds.is_not(None)).subquery())
        yield _histogram(connection, "saga_trino_queued_seconds",
                         "Time a step attempt's statements waited in Trino's queue", queued, ["saga_name"],
                         QUEUED_BUCKETS)

        rows_family = CounterMetricFamily("saga_trino_rows", "Rows written or returned by step statements",
                                          labels=["saga_name", "step_name"])
        bytes_family = CounterMetricFamily("saga_trino_processed_bytes", "Bytes Trino read for step statements",
                                           labels=["saga_name", "step_name"])
        for saga_name, step, rows, processed in connection.execute(
                sa.select(sagas.c.saga_name, step_attempts.c.step, sa.func.coalesce(sa.func.sum(step_attempts.c.rows), 0),
                          sa.func.coalesce(sa.func.sum(step_attempts.c.bytes), 0))
                .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id)
                .where(*finished, step_attempts.c.status == AttemptStatus.SUCCEEDED.value)
                .group_by(sagas.c.saga_name, step_attempts.c.step)):
            rows_family.add_metric([saga_name, step], int(rows))
            bytes_family.add_metric([saga_name, step], int(processed))
        yield rows_family
        yield bytes_family

        errors = CounterMetricFamily("saga_trino_errors", "Failed step attempts, by the error Trino (or the client) "
                                     "named", labels=["saga_name", "error_name"])
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for saga_name, error_name, count in connection.execute(
                sa.select(sagas.c.saga_name, step_attempts.c.error_name, sa.func.count())
                .join(sagas, sagas.c.saga_id == step_attempts.c.saga_id)
                .where(step_attempts.c.status == AttemptStatus.FAILED.value)
                .group_by(sagas.c.saga_name, step_attempts.c.error_name)):
            name = error_name if error_name and _ERROR_NAME.fullmatch(error_name) else "OTHER"
            counts[saga_name, name] += count
        for (saga_name, name), count in sorted(counts.items()):
            errors.add_metric([saga_name, name], count)
        yield errors

    # --- alerts ---------------------------------------------------------------------------------
    def _alerts(self, connection: sa.Connection) -> Iterator[Metric]:
        deliveries = CounterMetricFamily("saga_alert_deliveries", "Alerts settled, by outcome (delivered to the "
                                         "webhook, logged for want of one, or given up)", labels=["kind", "outcome"])
        attempts = CounterMetricFamily("saga_alert_delivery_attempts", "Attempts to post alerts to the webhook",
                                       labels=["kind"])
        pending = GaugeMetricFamily("saga_alerts_pending", "Alerts waiting to be delivered", labels=["kind"])
        totals: dict[str, int] = defaultdict(int)
        waiting: dict[str, int] = defaultdict(int)
        for kind, status, count, tries in connection.execute(
                sa.select(alerts.c.kind, alerts.c.status, sa.func.count(), sa.func.sum(alerts.c.attempts))
                .group_by(alerts.c.kind, alerts.c.status)):
            totals[kind] += int(tries or 0)
            if status in _ALERT_OUTCOMES:
                deliveries.add_metric([kind, status], count)
            else:
                waiting[kind] += count
        for kind in sorted(totals):
            attempts.add_metric([kind], totals[kind])
            pending.add_metric([kind], waiting[kind])
        yield deliveries
        yield attempts
        yield pending


def _saga_names(connection: sa.Connection) -> list[str]:
    return list(connection.execute(sa.select(sagas.c.saga_name).distinct()).scalars())


def _histogram(connection: sa.Connection, name: str, documentation: str, source: Any, labels: Sequence[str],
               buckets: Sequence[float], lower: Sequence[str] = ()) -> Metric:
    """A histogram family from a subquery with the label columns and `seconds`, bucketed by the database."""
    seconds = source.c.seconds
    columns = [source.c[label] for label in labels]
    cumulative = [sa.func.sum(sa.case((seconds <= bound, 1), else_=0)) for bound in buckets]
    query = (sa.select(*columns, sa.func.count(), sa.func.coalesce(sa.func.sum(seconds), 0.0), *cumulative)
             .where(seconds.is_not(None)).group_by(*columns))
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for row in connection.execute(query):
        values = [str(v).lower() if label in lower else str(v) for label, v in zip(labels, row[:len(labels)])]
        count, total, *counts = row[len(labels):]
        family.add_metric(values, [(_bound(b), int(c)) for b, c in zip(buckets, counts)] + [("+Inf", int(count))],
                          float(total))
    return family


def _bound(value: float) -> str:
    return str(float(value))


def _seconds_between(dialect: str) -> Any:
    if dialect == "postgresql":
        return lambda start, end: sa.cast(sa.func.extract("epoch", end - start), sa.Float)
    return lambda start, end: (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def serve_metrics(ledger: SqlLedger, host: str, port: int, stuck_after_seconds: float,
                  stop: Any) -> None:
    """Serve /metrics until `stop` (a threading.Event) is set."""
    from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, start_http_server

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
