"""What starts a report: its time partitions, its schedule, and its data-arrival sensor, from the spec.

A partitioned report runs one saga per day (or week): the partition fills the date parameters, so a
backfill over a range launched from the UI runs one correctly parametrized saga per partition. The
schedule runs the newest complete partition at the spec's time. The data-arrival sensor asks Trino
(one cheap statement) for the newest complete day and requests each new partition once (run key),
keeping its place in its cursor across daemon restarts.
"""

import datetime as dt
from typing import Any

import dagster as dg

from report_pipeline.orchestration.resources import ARRIVAL_SOURCE
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.trino.sql import render

TRIGGER_TAG = "report_pipeline/trigger"
PARTITION_TAG = "report_pipeline/partition"


def partitions_of(spec: ReportSpec) -> dg.PartitionsDefinition | None:
    if spec.partitions is None:
        return None
    if spec.partitions.cadence == "daily":
        return dg.DailyPartitionsDefinition(start_date=spec.partitions.start)
    return dg.WeeklyPartitionsDefinition(
        start_date=spec.partitions.start, day_offset=1
    )  # weeks start Monday


def partitioned_config(spec: ReportSpec, start_op: str) -> dg.PartitionedConfig | None:
    partitions = partitions_of(spec)
    if partitions is None:
        return None
    defaults = {name: p.default for name, p in spec.parameters.items() if p.default is not None}

    def run_config(partition_key: str) -> dict[str, Any]:
        return {
            "ops": {start_op: {"config": {**defaults, **spec.partitions.values(partition_key)}}}
        }

    return dg.PartitionedConfig(
        partitions_def=partitions,
        run_config_for_partition_key_fn=run_config,
        tags_for_partition_key_fn=lambda key: {PARTITION_TAG: key},
    )


def trigger_of(run: dg.DagsterRun) -> str:
    """Who started the run, as shown in the UI, the ledger and alerts."""
    tags = run.tags
    if tags.get("dagster/schedule_name"):
        return f"schedule:{tags['dagster/schedule_name']}"
    if tags.get("dagster/sensor_name"):
        return f"sensor:{tags['dagster/sensor_name']}"
    if tags.get("dagster/backfill"):
        return f"backfill:{tags['dagster/backfill']}"
    if run.parent_run_id:
        return f"reexecution:{run.parent_run_id}"
    return "manual"


def build_schedule(spec: ReportSpec, job: dg.JobDefinition) -> dg.ScheduleDefinition | None:
    if spec.schedule is None or spec.partitions is None:
        return None
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{spec.name}_schedule",
        description=f"{spec.name}: the newest complete partition, {spec.schedule} UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        **spec.schedule_fields(),
    )


def build_arrival_sensor(spec: ReportSpec, job: dg.JobDefinition) -> dg.SensorDefinition | None:
    if spec.arrival is None or spec.partitions is None:
        return None
    arrival, partitions = spec.arrival, partitions_of(spec)

    @dg.sensor(
        name=f"{spec.name}_arrival_sensor",
        job=job,
        minimum_interval_seconds=arrival.interval_seconds,
        required_resource_keys={"trino"},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs {spec.name} for each partition whose data is complete ({arrival.sql}).",
    )
    def arrival_sensor(context: dg.SensorEvaluationContext):
        statement = render(spec.sql_text(arrival.sql), {}, {})
        rows = (
            context.resources.trino.client(ARRIVAL_SOURCE)
            .execute(statement, timeout_seconds=60)
            .rows
        )
        newest = _as_date(rows[0][0]) if rows and rows[0] and rows[0][0] is not None else None
        if newest is None:
            return dg.SkipReason("no complete data yet")
        keys = partitions.get_partition_keys(
            current_time=dt.datetime.combine(
                newest + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC
            )
        )
        # complete partitions only: a week counts once its last day is complete
        keys = [k for k in keys if spec.partitions.window(k)[1] <= newest]
        if context.cursor:
            keys = [k for k in keys if k > context.cursor]
        elif keys:
            keys = keys[-1:]  # first evaluation: start with the newest, not all history
        keys = keys[: arrival.max_partitions_per_tick]
        if not keys:
            return dg.SkipReason(
                f"newest complete day {newest.isoformat()}: every partition was requested"
            )
        for key in keys:
            yield dg.RunRequest(
                run_key=f"{spec.name}:{key}", partition_key=key, tags={PARTITION_TAG: key}
            )
        context.update_cursor(keys[-1])

    return arrival_sensor


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])
