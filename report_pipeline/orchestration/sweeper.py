"""The scratch sweeper: drops scratch tables left behind by sagas that are over or unknown.

A sensor on an interval lists the scratch schema. A table named like a saga's (`saga_<key>_<name>`,
saga/scratch_names.py) is dropped when its saga is terminal (SUCCEEDED, COMPENSATED,
FAILED_NEEDS_MANUAL) or unknown to the ledger, and older than the minimum age (for a known saga:
since the saga ended; for an unknown one: since the sweeper first saw it). Tables of running sagas
and tables not named like a saga's are never touched. Every drop is logged and recorded beside the
ledger (SweeperRecords).
"""

import datetime as dt

import dagster as dg
import structlog

from report_pipeline.orchestration.resources import SWEEPER_SOURCE, TrinoResource
from report_pipeline.orchestration.sweeper_records import SweeperRecords
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.scratch_names import parse_scratch_name
from report_pipeline.storage.datetimes import as_utc
from report_pipeline.trino.sql import QualifiedName, Statement

SWEEP_INTERVAL_SECONDS = 300
log = structlog.get_logger("report_pipeline.sweeper")


def sweep_scratch_tables(
    trino: TrinoResource, ledger: SqlLedger, min_age_seconds: float, now: dt.datetime | None = None
) -> list[str]:
    """One pass of the sweeper; returns the tables it dropped."""
    records = SweeperRecords(ledger.engine)
    client = trino.client(SWEEPER_SOURCE)
    catalog, schema = client.settings.catalog, trino.scratch_schema
    listed = client.execute(
        Statement(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        )
    ).rows
    now = now or dt.datetime.now(dt.UTC)
    dropped = []
    for (table_name,) in listed:
        scratch_name = parse_scratch_name(table_name)
        if scratch_name is None:
            continue
        qualified = QualifiedName(catalog, schema, table_name)
        saga = ledger.find_saga_by_key(scratch_name.saga_key)
        if saga is not None and not saga.state.terminal:
            continue
        if saga is not None:
            since = as_utc(saga.updated_at)  # when the saga reached its terminal state
            reason = f"its saga is {saga.state.value}"
        else:
            since = records.first_seen(str(qualified), now)
            reason = "no saga in the ledger owns it"
        if (now - since).total_seconds() < min_age_seconds:
            continue
        client.execute(Statement(f"DROP TABLE IF EXISTS {qualified.quoted()}", []))
        records.record_sweep(str(qualified), saga, reason)
        log.info(
            "scratch table dropped",
            table=str(qualified),
            saga_id=saga.saga_id if saga else None,
            reason=reason,
        )
        dropped.append(str(qualified))
    return dropped


def build_sweeper_sensor(min_age_seconds: float) -> dg.SensorDefinition:
    @dg.sensor(
        name="scratch_sweeper_sensor",
        minimum_interval_seconds=SWEEP_INTERVAL_SECONDS,
        required_resource_keys={"trino", "ledger"},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Drops scratch tables of finished or unknown sagas older than "
        f"{min_age_seconds:.0f}s.",
    )
    def scratch_sweeper_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        dropped = sweep_scratch_tables(
            context.resources.trino, context.resources.ledger.ledger, min_age_seconds
        )
        for table in dropped:
            context.log.info(f"dropped {table}")
        return dg.SkipReason(
            f"dropped {len(dropped)} scratch table(s)"
            + (f": {', '.join(dropped)}" if dropped else "")
        )

    return scratch_sweeper_sensor
