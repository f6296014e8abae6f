"""The scratch sweeper's records, in the ledger's database: when it first saw each table that no
saga owns (its age counts from then), and every table it dropped, with why."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from report_pipeline.saga.model import SagaRecord, SagaState
from report_pipeline.storage.datetimes import as_utc, utc_now
from report_pipeline.storage.schema import sweeper_sightings, sweeps


@dataclass(frozen=True)
class Sweep:
    """A scratch table the sweeper dropped."""

    table_name: str
    saga_id: str | None  # None: no saga in the ledger owned it
    saga_state: SagaState | None
    reason: str
    dropped_at: dt.datetime


class SweeperRecords:
    def __init__(self, engine: sa.Engine):
        self.engine = engine  # the saga ledger's (SqlLedger.engine)

    def first_seen(self, table_name: str, now: dt.datetime | None = None) -> dt.datetime:
        """When the sweeper first saw a table it cannot tie to a saga (recorded on first sight)."""
        with self.engine.begin() as connection:
            seen = connection.execute(
                sa.select(sweeper_sightings.c.first_seen).where(
                    sweeper_sightings.c.table_name == table_name
                )
            ).scalar()
            if seen is None:
                seen = now or utc_now()
                connection.execute(
                    sweeper_sightings.insert().values(table_name=table_name, first_seen=seen)
                )
            return as_utc(seen)

    def record_sweep(self, table_name: str, saga: SagaRecord | None, reason: str) -> None:
        """Note a dropped table (and forget when it was first seen: the name may come back)."""
        with self.engine.begin() as connection:
            connection.execute(
                sweeps.insert().values(
                    table_name=table_name,
                    saga_id=saga.saga_id if saga else None,
                    saga_state=saga.state.value if saga else None,
                    reason=reason,
                    dropped_at=utc_now(),
                )
            )
            connection.execute(
                sweeper_sightings.delete().where(sweeper_sightings.c.table_name == table_name)
            )

    def sweeps(self) -> list[Sweep]:
        """Every drop, oldest first."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(sweeps).order_by(sweeps.c.id)).mappings().all()
        return [
            Sweep(
                row["table_name"],
                row["saga_id"],
                SagaState(row["saga_state"]) if row["saga_state"] else None,
                row["reason"],
                as_utc(row["dropped_at"]),
            )
            for row in rows
        ]
