"""What starts a report: its time partitions, schedule and data-arrival sensor, from the spec.

A partitioned report runs one saga per day (or week): the partition fills the date parameters, so a
backfill over a range launched from the UI runs one correctly parametrized saga per partition. The
schedule runs the newest complete partition at the spec's time. The data-arrival sensor asks Trino
(one cheap statement) for the newest complete day and requests each new partition once (run key),
keeping its place in its cursor across daemon restarts.
"""

import datetime as dt
from typing import Any

import dagster as dg

from report_pipeline.orchestration.names import PARTITION_TAG, START_OP
from report_pipeline.orchestration.resources import ARRIVAL_SOURCE
from report_pipeline.reporting.spec import PartitionSpec, ReportSpec
from report_pipeline.trino.sql import render


def partitions_of(partitions: PartitionSpec) -> dg.PartitionsDefinition:
    if partitions.cadence == "daily":
        return dg.DailyPartitionsDefinition(start_date=partitions.start)
    # weeks start on Monday
    return dg.WeeklyPartitionsDefinition(start_date=partitions.start, day_offset=1)


def partitioned_config(spec: ReportSpec) -> dg.PartitionedConfig | None:
    """A partitioned report's run config per partition: the start op's parameters, filled in."""
    partitions = spec.partitions
    if partitions is None:
        return None
    defaults = {name: p.default for name, p in spec.parameters.items() if p.default is not None}

    def run_config(partition_key: str) -> dict[str, Any]:
        return {"ops": {START_OP: {"config": {**defaults, **partitions.values(partition_key)}}}}

    return dg.PartitionedConfig(
        partitions_def=partitions_of(partitions),
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
    when = spec.schedule_fields()
    schedule = dg.build_schedule_from_partitioned_job(
        job,
        name=f"{spec.name}_schedule",
        description=f"{spec.name}: the newest complete partition, {spec.schedule} UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        minute_of_hour=when["minute_of_hour"],
        hour_of_day=when["hour_of_day"],
        day_of_week=when.get("day_of_week"),
    )
    # a job's schedule is complete at once (only an asset selection's waits for its assets)
    assert isinstance(schedule, dg.ScheduleDefinition)
    return schedule


def build_arrival_sensor(spec: ReportSpec, job: dg.JobDefinition) -> dg.SensorDefinition | None:
    if spec.arrival is None or spec.partitions is None:
        return None
    arrival, windows = spec.arrival, spec.partitions
    partitions = partitions_of(windows)

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
        keys = [k for k in keys if windows.window(k)[1] <= newest]
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
