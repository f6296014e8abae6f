"""The `compensate_saga` job, and the sensor that launches it when a run left its saga unfinished.

Failure hooks cover a step that fails cleanly. They do not run when a run is terminated or its
process is killed, and a run that hangs is failed by run monitoring. The backstop sensor reads the
ledger: every saga that is not in a terminal state although the last run tied to it has ended gets
a `compensate_saga` run (visible in the UI, its config naming the saga). Run keys make the request
once per saga generation and attempt; the ledger is the cursor, so nothing is missed across daemon
restarts, and each tick reads every unfinished saga, page by page, with no cap.
"""

import dagster as dg

from report_pipeline.orchestration.jobs import SagaScope
from report_pipeline.orchestration.names import (
    COMPENSATE_JOB,
    COMPENSATE_OP,
    SAGA_ID_TAG,
    SAGA_STATE_TAG,
)
from report_pipeline.reporting.spec import ReportSpec
from report_pipeline.saga import RunKind, SagaState, give_up
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.model import SagaRecord

# The sensor daemon evaluates sensors on a fixed 5-second pass; a minimum interval of 5 s would
# skip every pass that comes a little early (a 10 s gap). At 1 s, every pass reads the ledger.
BACKSTOP_INTERVAL_SECONDS = 1
MAX_COMPENSATION_RUNS = 3  # then a person must look: the saga is set FAILED_NEEDS_MANUAL
BACKSTOP_PAGE_SIZE = (
    200  # sagas read (and their runs looked up) together; every page is read each tick
)


class CompensateSagaConfig(dg.Config):
    saga_id: str
    reason: str = "requested"


def build_compensation_job(specs: dict[str, ReportSpec]) -> dg.JobDefinition:
    @dg.op(
        name=COMPENSATE_OP,
        required_resource_keys={"trino", "ledger"},
        description="Undo a saga its run left unfinished (terminated, killed, timed out).",
    )
    def compensate_saga(context: dg.OpExecutionContext, config: CompensateSagaConfig):
        ledger = context.resources.ledger.ledger
        saga = ledger.get_saga(config.saga_id)
        if saga is None:
            raise dg.Failure(f"no saga {config.saga_id} in the ledger")
        spec = specs.get(saga.saga_name)
        if spec is None:
            raise dg.Failure(
                f"saga {saga.saga_id} belongs to report {saga.saga_name}, which this code location "
                f"does not define"
            )
        ledger.link_run(saga.saga_id, context.run_id, saga.run_id, RunKind.COMPENSATION)
        scope = SagaScope.of(spec, context, saga.saga_id)
        context.log.info(f"compensating saga {saga.saga_id} ({saga.state.value}): {config.reason}")
        with scope.log_context(saga.failed_step):
            state = scope.saga().compensate_unfinished(config.reason)
        scope.tag_state(context, *([saga.run_id] if saga.run_id else []))
        run_log = scope.run_log
        assert run_log is not None  # SagaScope.of gives every op one
        summary = run_log.compensation_summary(saga.saga_id, state)
        original = context.instance.get_run_by_id(saga.run_id) if saga.run_id else None
        if original is not None:
            run_log.link_compensated_run(original, state)
            summary["compensated_run"] = dg.MetadataValue.dagster_run(original.run_id)
        if state == SagaState.FAILED_NEEDS_MANUAL:
            raise dg.Failure(
                f"saga {saga.saga_id} is FAILED_NEEDS_MANUAL: a compensation kept failing; "
                f"see the failed undo events above",
                metadata=summary,
                allow_retries=False,
            )
        yield dg.Output(None, metadata=summary)

    @dg.job(
        name=COMPENSATE_JOB,
        executor_def=dg.in_process_executor,
        description="Compensates one saga; launched by saga_backstop_sensor, or by hand (saga id).",
    )
    def compensate_saga_job() -> None:
        compensate_saga()

    return compensate_saga_job


def build_backstop_sensor(job: dg.JobDefinition) -> dg.SensorDefinition:
    @dg.sensor(
        name="saga_backstop_sensor",
        job=job,
        minimum_interval_seconds=BACKSTOP_INTERVAL_SECONDS,
        required_resource_keys={"ledger"},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Compensates sagas left unfinished by terminated, killed or timed-out runs.",
    )
    def saga_backstop_sensor(context: dg.SensorEvaluationContext):
        ledger = context.resources.ledger.ledger
        for page in ledger.unfinished_sagas(BACKSTOP_PAGE_SIZE):
            runs = ledger.runs_of([saga.saga_id for saga in page])
            latest = {saga_id: linked[-1]["run_id"] for saga_id, linked in runs.items() if linked}
            # (an empty run_ids filter would match every run)
            known = (
                {
                    run.run_id: run
                    for run in context.instance.get_runs(
                        dg.RunsFilter(run_ids=list(latest.values()))
                    )
                }
                if latest
                else {}
            )
            for saga in page:
                run = known.get(latest.get(saga.saga_id, ""))
                if run is not None and not run.is_finished:
                    continue  # still going (a run the instance does not know cannot be)
                request = _backstop_request(
                    context, ledger, saga, run, latest.get(saga.saga_id), runs[saga.saga_id]
                )
                if request is not None:
                    yield request

    return saga_backstop_sensor


def _backstop_request(
    context: dg.SensorEvaluationContext,
    ledger: SqlLedger,
    saga: SagaRecord,
    run: dg.DagsterRun | None,
    run_id: str | None,
    linked: list[dict],
) -> dg.RunRequest | None:
    """The compensation run for a saga whose run ended without finishing it, or None when enough
    compensation runs have failed that a person must look (the saga is set FAILED_NEEDS_MANUAL)."""
    attempts = sum(1 for r in linked if r["kind"] == RunKind.COMPENSATION)
    if attempts >= MAX_COMPENSATION_RUNS:
        reason = f"{attempts} compensation runs ended without compensating the saga"
        give_up(ledger, saga.saga_id, reason)
        context.log.error(f"saga {saga.saga_id} is FAILED_NEEDS_MANUAL: {reason}")
        return None
    ended = f"ended {run.status.value}" if run else "is unknown to this instance"
    reason = f"run {run_id or '?'} {ended} with the saga {saga.state.value}"
    context.log.info(f"saga {saga.saga_id}: {reason}")
    return dg.RunRequest(
        run_key=f"compensate:{saga.saga_id}:{saga.generation}:{attempts}",
        run_config={
            "ops": {COMPENSATE_OP: {"config": {"saga_id": saga.saga_id, "reason": reason}}}
        },
        # ahead of queued report runs: cleanup must not wait behind new work
        tags={
            SAGA_ID_TAG: saga.saga_id,
            SAGA_STATE_TAG: saga.state.value,
            "report": saga.saga_name,
            "dagster/priority": "10",
        },
    )


__all__ = ["build_backstop_sensor", "build_compensation_job"]
