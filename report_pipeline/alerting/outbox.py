"""The alert outbox: every alert queued once under its key, then settled by delivery.

It lives in the ledger's database (table `saga_alerts`, over the saga ledger's engine), so a daemon
restart neither repeats nor loses an alert, and the sagas still owed one are found in SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa

from report_pipeline.alerting.alerts import Alert
from report_pipeline.saga.ledger import saga_pages
from report_pipeline.saga.model import SagaRecord, SagaState
from report_pipeline.storage.datetimes import utc_now
from report_pipeline.storage.schema import alerts, sagas


class AlertStatus(StrEnum):
    PENDING = "pending"  # queued, or a failed post waiting for its next attempt
    DELIVERED = "delivered"  # the webhook answered 2xx
    LOGGED = "logged"  # no webhook configured: written to the log instead
    FAILED = "failed"  # every attempt failed: given up

    @property
    def settled(self) -> bool:
        return self != AlertStatus.PENDING


@dataclass(frozen=True)
class QueuedAlert:
    key: str
    saga_id: str | None
    kind: str  # an AlertKind's value (or an earlier name of one, in an old row)
    payload: dict[str, Any]  # Alert.to_json()
    status: AlertStatus
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    @property
    def alert(self) -> Alert:
        return Alert.from_json(self.payload)


class AlertTally(NamedTuple):
    """The alerts of one kind in one status, and the posts tried for them (for the metrics)."""

    kind: str
    status: AlertStatus
    alerts: int
    attempts: int


class AlertOutbox:
    def __init__(self, engine: sa.Engine):
        self.engine = engine  # the saga ledger's (SqlLedger.engine)

    def queue(self, alert: Alert) -> bool:
        """Queue an alert; False if one with its key exists (each outcome alerts exactly once)."""
        with self.engine.begin() as connection:
            if connection.execute(
                sa.select(alerts.c.alert_key).where(alerts.c.alert_key == alert.key)
            ).first():
                return False
            now = utc_now()
            connection.execute(
                alerts.insert().values(
                    alert_key=alert.key,
                    saga_id=alert.saga_id,
                    kind=alert.kind.value,
                    payload=alert.to_json(),
                    status=AlertStatus.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
            return True

    def due(self, now: dt.datetime | None = None) -> list[QueuedAlert]:
        """The pending alerts whose next attempt is due, oldest first."""
        return self._read(
            alerts.c.status == AlertStatus.PENDING.value,
            alerts.c.next_attempt_at <= (now or utc_now()),
        )

    def alerts(self, saga_id: str | None = None) -> list[QueuedAlert]:
        """Every alert (of one saga), oldest first."""
        return self._read(*([alerts.c.saga_id == saga_id] if saga_id is not None else []))

    def mark_delivered(self, key: str, attempts: int) -> None:
        self._update(
            key,
            status=AlertStatus.DELIVERED.value,
            attempts=attempts,
            last_error=None,
            delivered_at=utc_now(),
        )

    def mark_logged(self, key: str, attempts: int) -> None:
        self._update(
            key, status=AlertStatus.LOGGED.value, attempts=attempts, delivered_at=utc_now()
        )

    def mark_failed_attempt(
        self, key: str, attempts: int, error: str, next_attempt_at: dt.datetime, gave_up: bool
    ) -> None:
        """A failed post: tried again at `next_attempt_at`, unless this was the last attempt."""
        self._update(
            key,
            status=(AlertStatus.FAILED if gave_up else AlertStatus.PENDING).value,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            last_error=error,
        )

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
        yield from saga_pages(self.engine, condition, page_size)

    def _read(self, *conditions: Any) -> list[QueuedAlert]:
        query = sa.select(alerts).where(*conditions).order_by(alerts.c.created_at)
        with self.engine.connect() as connection:
            rows = connection.execute(query).mappings().all()
        return [
            QueuedAlert(
                row["alert_key"],
                row["saga_id"],
                row["kind"],
                row["payload"],
                AlertStatus(row["status"]),
                row["attempts"],
                row["next_attempt_at"],
                row["last_error"],
                row["created_at"],
                row["delivered_at"],
            )
            for row in rows
        ]

    def _update(self, key: str, **values: Any) -> None:
        with self.engine.begin() as connection:
            connection.execute(alerts.update().where(alerts.c.alert_key == key).values(**values))


def alert_tallies(connection: sa.Connection) -> list[AlertTally]:
    """Alerts and posts tried, by kind and status, on the caller's connection (in its snapshot)."""
    return [
        AlertTally(kind, AlertStatus(status), count, int(tries or 0))
        for kind, status, count, tries in connection.execute(
            sa.select(
                alerts.c.kind, alerts.c.status, sa.func.count(), sa.func.sum(alerts.c.attempts)
            ).group_by(alerts.c.kind, alerts.c.status)
        )
    ]
