"""One Dagster job per report spec: a `start_saga` op, then one op per step, wired as its DAG.

Ops pass nothing to each other (state lives in the ledger and in Trino), so re-execution needs no
stored outputs. Each op hands its step to the saga engine; the failure hook hands the saga to the
compensation. What the UI shows: run tags `saga/id` and `saga/state`, op metadata (Trino query id,
rows, bytes, elapsed time, a link to the query in the Trino UI, the report preview), and progress
lines in the run's log while a statement runs.
"""

# no `from __future__ import annotations`: Dagster reads the config class from the annotation

import time
from contextlib import AbstractContextManager
from typing import Any, Self

import dagster as dg
import pydantic
import structlog
from tabulate import tabulate

from report_pipeline.orchestration.names import (
    PARTITION_TAG,
    SAGA_ID_TAG,
    SAGA_STATE_TAG,
    START_OP,
    TRIGGER_TAG,
)
from report_pipeline.orchestration.resources import LedgerResource, TrinoResource
from report_pipeline.orchestration.run_log import RunLog
from report_pipeline.orchestration.triggers import partitioned_config, trigger_of
from report_pipeline.reporting.runner import ReportStepRunner, StepDetails
from report_pipeline.reporting.spec import ParameterError, ReportSpec, StepSpec, parameters_to_json
from report_pipeline.saga import (
    FailureKind,
    SagaCoordinator,
    SagaFenced,
    SagaHandle,
    SagaState,
    StepCancelled,
    StepError,
    StepProgress,
    StepResult,
    StepTimedOut,
    TransientStepError,
)
from report_pipeline.saga.model import SagaRecord
from report_pipeline.trino.client import QueryProgress

PROGRESS_INTERVAL_SECONDS = 2.0
log = structlog.get_logger("report_pipeline.orchestration")

# Parallel branches of a report must really run at once: each step is a process. forkserver with the
# project preloaded keeps the cost of starting a step process low. A chain needs none of that: its
# steps run in the run worker, one after another (ReportSpec.runs_in_process).
MULTIPROCESS_EXECUTOR = dg.multiprocess_executor.configured(
    {
        "max_concurrent": 4,
        "start_method": {"forkserver": {"preload_modules": ["report_pipeline.definitions"]}},
    }
)


# The saga state this process last wrote on each run's tag. A step that leaves the saga as it was
# (RUNNING, mostly) writes no tag: a chain's steps share one process, so only the start, the end
# and a failure cost a run-storage write.
_tagged_states: dict[str, SagaState] = {}


def saga_id_of(run: dg.DagsterRun) -> str:
    """A saga is identified by its root run: re-executions continue the same saga."""
    return run.root_run_id or run.run_id


class SagaScope:
    """What an op or hook of one run needs to talk to the saga engine about the run's saga."""

    def __init__(
        self,
        spec: ReportSpec,
        saga_id: str,
        run_id: str,
        trino: TrinoResource,
        ledger: LedgerResource,
        log: Any,
        run_log: RunLog | None = None,
    ):
        self.spec = spec
        self.saga_id = saga_id
        self.run_id = run_id
        self.ledger = ledger.ledger
        self.coordinator = SagaCoordinator(self.ledger, spec.saga_definition())
        self.trino = trino
        self.log = log
        self.run_log = run_log  # where undo attempts are shown; None: only the JSON logs
        self._last_progress: dict[str, tuple[float, str]] = {}

    @classmethod
    def of(
        cls, spec: ReportSpec, context: dg.OpExecutionContext | dg.HookContext, saga_id: str
    ) -> Self:
        """The scope of the run `context` belongs to, with its resources and its Dagster log."""
        resources = context.resources
        trino_ui = resources.trino.settings().ui_url
        return cls(
            spec,
            saga_id,
            context.run_id,
            resources.trino,
            resources.ledger,
            context.log,
            RunLog.of(context, trino_ui),
        )

    def saga(self, parameters: dict[str, Any] | None = None) -> SagaHandle:
        """The saga as this run drives it, its steps run with `parameters` (parsed; by default,
        those the saga was started with)."""
        if parameters is None:
            parameters = self.spec.parse_parameters(self._record().parameters)
        runner = ReportStepRunner(
            self.spec,
            self.trino.client(),
            self.saga_id,
            parameters,
            scratch_schema=self.trino.scratch_schema,
            recorded_tables=lambda: set(self.ledger.created_tables(self.saga_id)),
            on_progress=self._report_progress,
        )
        return self.coordinator.saga(
            self.saga_id,
            run_id=self.run_id,
            runner=runner,
            on_undo=self.run_log.undo if self.run_log else None,
        )

    def log_context(self, step: str | None = None) -> AbstractContextManager[None]:
        """Every JSON log line written meanwhile carries the saga, run and step (the client adds
        the query)."""
        return structlog.contextvars.bound_contextvars(
            saga_id=self.saga_id, run_id=self.run_id, report=self.spec.name, step=step
        )

    def tag_state(
        self, context: dg.OpExecutionContext | dg.HookContext, *other_runs: str
    ) -> SagaState:
        """Show the saga's state on the run (and on its other runs, for a compensation run)."""
        state = self._record().state
        for run_id in (context.run_id, *other_runs):
            if _tagged_states.get(run_id) != state:
                context.instance.add_run_tags(
                    run_id, {SAGA_ID_TAG: self.saga_id, SAGA_STATE_TAG: state.value}
                )
                _tagged_states[run_id] = state
        return state

    def _record(self) -> SagaRecord:
        saga = self.ledger.get_saga(self.saga_id)
        if saga is None:
            raise dg.Failure(
                f"saga {self.saga_id} was never started (its {START_OP} step did not succeed)"
            )
        return saga

    def _report_progress(self, step: str, progress: QueryProgress) -> None:
        # noted when the query starts running and every PROGRESS_INTERVAL_SECONDS while it runs (or
        # waits in Trino's queue that long); how it ended is in the attempt's own record
        now = time.monotonic()
        last_time, last_state = self._last_progress.get(step, (0.0, ""))
        if progress.state == last_state and now - last_time < PROGRESS_INTERVAL_SECONDS:
            return
        if progress.state not in ("QUEUED", "RUNNING") or (
            progress.state == "QUEUED" and progress.elapsed_seconds < PROGRESS_INTERVAL_SECONDS
        ):
            return
        self._last_progress[step] = (now, progress.state)
        # for `report-pipeline status`; progress is a courtesy, never a reason to fail the step
        try:
            self.ledger.record_progress(
                self.saga_id,
                step,
                StepProgress(
                    progress.state,
                    progress.percent,
                    progress.processed_rows,
                    progress.processed_bytes,
                ),
            )
        except Exception as error:
            log.warning("could not record progress", error=str(error))
        log.info(
            "statement progress",
            state=progress.state,
            percent=progress.percent,
            processed_rows=progress.processed_rows,
            processed_bytes=progress.processed_bytes,
            elapsed_seconds=round(progress.elapsed_seconds, 1),
        )
        if progress.state == "QUEUED":
            return
        percent = f"{progress.percent:.0f}%" if progress.percent is not None else "-"
        self.log.info(
            f"{step}: Trino query {progress.query_id} {progress.state} {percent} "
            f"({progress.completed_splits}/{progress.total_splits} splits, "
            f"{progress.processed_rows:,} rows, {progress.processed_bytes / 1e6:.1f} MB, "
            f"{progress.elapsed_seconds:.0f}s)"
        )


def _config_class(spec: ReportSpec) -> type[dg.Config]:
    """The launchpad's typed config: dates as ISO strings (Dagster config has no date type). Every
    field accepts null, so a missing or null value reaches the spec's own check and its one-line
    error ("min_events: a value is required") instead of a config-type dump."""
    fields: dict[str, Any] = {}
    for name, parameter in spec.parameters.items():
        annotation = int if parameter.type == "integer" else str
        fields[name] = (
            annotation | None,
            pydantic.Field(default=parameter.default, description=parameter.description or None),
        )
    class_name = "".join(part.title() for part in spec.name.split("_")) + "Parameters"
    return pydantic.create_model(class_name, __base__=dg.Config, **fields)


def _start_op(spec: ReportSpec) -> dg.OpDefinition:
    config_class = _config_class(spec)

    @dg.op(
        name=f"{spec.name}__{START_OP}",
        out=dg.Out(dg.Nothing),
        required_resource_keys={"trino", "ledger"},
        description=f"Validate the parameters of {spec.name} and record the saga in the ledger.",
    )
    # config_class is built per report at run time; mypy cannot take a variable as a type
    def start_saga(context: dg.OpExecutionContext, config: config_class):  # type: ignore[valid-type]
        try:
            # (through the base class: to mypy, a class built at run time has no attributes)
            parameters = spec.parse_parameters(dg.Config.model_dump(config))
        except ParameterError as error:
            raise dg.Failure(
                description=f"Invalid parameters for {spec.name}: {error}",
                metadata={name: problem for name, problem in error.problems.items()},
                allow_retries=False,
            ) from None
        # a misconfigured connection (say, a password over plain HTTP) stops here, before the saga
        try:
            context.resources.trino.settings()
        except ValueError as error:
            raise dg.Failure(
                description=f"Invalid Trino settings: {error}", allow_retries=False
            ) from None
        scope = SagaScope.of(spec, context, saga_id_of(context.run))
        trigger = trigger_of(context.run)
        partition = context.partition_key if context.has_partition_key else None
        with scope.log_context(START_OP):
            created = scope.saga(parameters).start(
                parameters_to_json(parameters), trigger=trigger, partition=partition
            )
        context.instance.add_run_tags(
            context.run_id,
            {TRIGGER_TAG: trigger, **({PARTITION_TAG: partition} if partition else {})},
        )
        scope.tag_state(context)
        context.log.info(
            f"saga {scope.saga_id} {'started' if created else 'already recorded'} "
            f"with {parameters_to_json(parameters)}"
        )
        yield dg.Output(None, metadata={"saga_id": scope.saga_id, **parameters_to_json(parameters)})

    return start_saga


def _failure(kind: FailureKind, step: str, error: BaseException) -> dg.Failure:
    metadata: dict[str, Any] = {"failure_kind": kind.value, "error": str(error)}
    if isinstance(error, StepError):
        metadata.update(error_name=error.error_name or "", query_id=error.query_id or "")
    return dg.Failure(
        description=f"step {step} failed ({kind.value}): {error}",
        metadata=metadata,
        allow_retries=False,
    )


def _step_op(spec: ReportSpec, step_name: str) -> dg.OpDefinition:
    step = spec.steps[step_name]
    ins = {dep: dg.In(dg.Nothing) for dep in step.depends_on} or {START_OP: dg.In(dg.Nothing)}

    @dg.op(
        name=f"{spec.name}__{step_name}",
        ins=ins,
        out=dg.Out(dg.Nothing),
        pool="trino",
        required_resource_keys={"trino", "ledger"},
        tags={"kind": "trino"},
        description=f"{', '.join(step.action)}; undo: {', '.join(step.compensation) or 'none'}",
    )
    def run_step(context: dg.OpExecutionContext):
        scope = SagaScope.of(spec, context, saga_id_of(context.run))
        with scope.log_context(step_name):
            result, state = _run_step(context, scope, step_name, step)
        yield dg.Output(
            None, metadata=_metadata(result, scope.trino.client().settings.ui_url, state)
        )

    return run_step


def _run_step(
    context: dg.OpExecutionContext, scope: SagaScope, step_name: str, step: StepSpec
) -> tuple[StepResult[StepDetails], SagaState]:
    """The step through the saga engine, with Dagster's retry, failure and termination semantics."""
    saga = scope.saga()
    restored = saga.join(step_name, context.run.parent_run_id, context.run.step_keys_to_execute)
    if restored:
        context.log.info(f"restored steps skipped by this re-execution: {', '.join(restored)}")
    attempt = context.retry_number + 1
    try:
        result = saga.execute_step(step_name, attempt)
    except TransientStepError as error:
        retry = step.retry.policy()
        if attempt < retry.max_attempts:
            delay = retry.delay(attempt)
            context.log.warning(f"{step_name}: transient failure, retry in {delay:.1f}s: {error}")
            raise dg.RetryRequested(
                max_retries=retry.max_attempts - 1, seconds_to_wait=delay
            ) from error
        raise _failure(FailureKind.STEP_FAILED, step_name, error) from error
    except StepTimedOut as error:
        raise _failure(FailureKind.TIMED_OUT, step_name, error) from error
    except StepCancelled as error:
        raise _failure(FailureKind.CANCELLED, step_name, error) from error
    except (StepError, SagaFenced) as error:
        raise _failure(FailureKind.STEP_FAILED, step_name, error) from error
    except dg.DagsterExecutionInterruptedError:
        # The run is being terminated: the Trino query was cancelled on the way out. Hooks do not
        # run on termination, so record it; the saga backstop sensor compensates the saga.
        saga.stop(FailureKind.CANCELLED, interrupted=[step_name], error="run terminated")
        scope.tag_state(context)
        raise
    return result, scope.tag_state(context)


def _metadata(result: StepResult[StepDetails], trino_ui: str, state: SagaState) -> dict[str, Any]:
    details = result.details or StepDetails()
    metadata: dict[str, Any] = {
        "trino_query_id": result.query_id or "",
        "rows": dg.MetadataValue.int(result.rows or 0),
        "processed_rows": dg.MetadataValue.int(details.processed_rows),
        "processed_bytes": dg.MetadataValue.int(result.bytes or 0),
        "elapsed_seconds": dg.MetadataValue.float(round(result.elapsed_seconds or 0.0, 3)),
        "saga_state": state.value,
    }
    if details.info_uri:
        metadata["trino_ui"] = dg.MetadataValue.url(details.info_uri)
    elif result.query_id:
        metadata["trino_ui"] = dg.MetadataValue.url(f"{trino_ui}/ui/query.html?{result.query_id}")
    if details.preview is not None:
        table = tabulate(
            details.preview.rows,
            headers=details.preview.columns,
            tablefmt="github",
            floatfmt=".2f",
        )
        metadata["report_preview"] = dg.MetadataValue.md(table)
        metadata["report_row_count"] = dg.MetadataValue.int(details.preview.row_count)
    return metadata


def _compensation_hook(spec: ReportSpec) -> dg.HookDefinition:
    @dg.failure_hook(name=f"{spec.name}__compensate", required_resource_keys={"trino", "ledger"})
    def compensate(context: dg.HookContext) -> None:
        run = context.instance.get_run_by_id(context.run_id)
        assert run is not None  # the hook runs inside it
        scope = SagaScope.of(spec, context, saga_id_of(run))
        if scope.ledger.get_saga(scope.saga_id) is None:
            context.log.info(
                f"{context.op.name} failed before the saga started: nothing to compensate"
            )
            return
        error = context.op_exception
        metadata = getattr(error, "metadata", None) or {}
        kind = FailureKind(
            _metadata_text(metadata, "failure_kind") or FailureKind.STEP_FAILED.value
        )
        message = (
            _metadata_text(metadata, "error") or getattr(error, "description", None) or str(error)
        )
        with scope.log_context(context.op.name):
            state = scope.saga().compensate(kind, failed_step=context.op.name, error=message)
        scope.tag_state(context)
        if scope.run_log:
            scope.run_log.compensation_summary(scope.saga_id, state)

    return compensate


def _metadata_text(metadata: dict[str, Any], key: str) -> str | None:
    value = metadata.get(key)
    return getattr(value, "value", value)


def executor_for(spec: ReportSpec) -> dg.ExecutorDefinition:
    return dg.in_process_executor if spec.runs_in_process() else MULTIPROCESS_EXECUTOR


def build_report_job(
    spec: ReportSpec, executor: dg.ExecutorDefinition | None = None
) -> dg.JobDefinition:
    """The report's job; `executor` overrides the one its spec chooses (benchmarks compare them)."""
    definition = spec.saga_definition()
    start = _start_op(spec)
    ops = {name: _step_op(spec, name) for name in definition.order()}

    @dg.job(
        name=spec.name,
        description=spec.description.strip(),
        hooks={_compensation_hook(spec)},
        executor_def=executor or executor_for(spec),
        tags={"report": spec.name, "owner": spec.owner},
        # Dagster's typing omits None, which the decorator takes (its default): no partitions
        config=partitioned_config(spec),  # type: ignore[arg-type]
    )
    def report_job() -> None:
        started = start.alias(START_OP)()
        done: dict[str, Any] = {}
        for name in definition.order():
            step = spec.steps[name]
            inputs = {dep: done[dep] for dep in step.depends_on} or {START_OP: started}
            done[name] = ops[name].alias(name)(**inputs)

    return report_job
