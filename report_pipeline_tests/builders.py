"""Builders the tests share: a report launch's run config, and sagas left in a chosen state.

Two ways to a saga in a state: `saga_in` records it in the ledger and moves it there as the
coordinator would, with no step run (what sensors, alerts and the sweeper read); `chain_saga_in`
has the saga engine run the CHAIN saga of saga/conftest.py there, step attempts and all (what
metrics and the status view read)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from report_pipeline.orchestration.names import START_OP
from report_pipeline.saga import (
    AttemptKind,
    FailureKind,
    RunKind,
    SagaCoordinator,
    SagaState,
    StepError,
    StepRunner,
)
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.storage import schema as ledger_tables
from report_pipeline_tests.saga.conftest import ScriptedRunner, coordinator, permanent

DAILY_REPORT = "daily_country_report"
CHAIN_PARAMETERS = {"day": "2026-01-01"}
_STOP_STATES = (SagaState.FAILED, SagaState.TIMED_OUT, SagaState.CANCELLED)
_REASON = "set by the test"


def _stop_for(state: SagaState) -> FailureKind:
    """Why a saga on its way to `state` stopped: timed out or cancelled if `state` says so, else a
    step failed."""
    if state in (SagaState.TIMED_OUT, SagaState.CANCELLED):
        return FailureKind.of_unfinished(state)
    return FailureKind.STEP_FAILED


def start_saga_config(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The run config of a report job's launch with these parameters, as the Launchpad takes it."""
    return {"ops": {START_OP: {"config": dict(parameters)}}}


def move_saga(
    ledger: SqlLedger,
    saga_id: str,
    state: SagaState,
    *,
    stopped_by: FailureKind | None = None,
    failed_step: str | None = None,
    error: str | None = None,
) -> SagaState:
    """Move a saga along the transitions the coordinator records until it is in `state`: RUNNING,
    then stopped (`stopped_by`, by default what `state` implies, else a step failure), COMPENSATING,
    and COMPENSATED or FAILED_NEEDS_MANUAL. A transition the saga is not in place for is skipped, as
    the ledger skips it (someone else moved the saga on); returns the state the saga is in."""
    if state == SagaState.SUCCEEDED:
        ledger.transition(saga_id, {SagaState.RUNNING}, state, _REASON)
    elif state != SagaState.RUNNING:
        stop = stopped_by or _stop_for(state)
        ledger.transition(
            saga_id,
            {SagaState.RUNNING},
            stop.state,
            _REASON,
            failure_kind=stop.value,
            failed_step=failed_step,
            error=error,
        )
        if state not in _STOP_STATES:
            ledger.transition(saga_id, _STOP_STATES, SagaState.COMPENSATING, _REASON)
            if state != SagaState.COMPENSATING:
                ledger.transition(saga_id, {SagaState.COMPENSATING}, state, _REASON)
    record = ledger.get_saga(saga_id)
    assert record is not None, f"no saga {saga_id}"
    return record.state


def saga_in(
    ledger: SqlLedger,
    state: SagaState,
    *,
    saga_id: str | None = None,
    report: str = DAILY_REPORT,
    parameters: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    stopped_by: FailureKind | None = None,
    failed_step: str | None = None,
    error: str | None = None,
) -> str:
    """A new saga of `report` recorded in the ledger and moved to `state` (see `move_saga`): the
    ledger's record of a saga, without running any step. Returns its id."""
    saga_id = saga_id or str(uuid.uuid4())
    ledger.create_saga(saga_id, report, dict(parameters or {}), run_id)
    reached = move_saga(
        ledger, saga_id, state, stopped_by=stopped_by, failed_step=failed_step, error=error
    )
    assert reached == state, f"saga {saga_id} is {reached}, not {state}"
    return saga_id


def add_backlog(
    ledger: SqlLedger,
    count: int,
    state: SagaState,
    run_id: str,
    report: str = DAILY_REPORT,
) -> list[str]:
    """`count` sagas in `state`, tied to `run_id`, oldest first: a backfill's worth, written in one
    transaction (moving each through the ledger would take minutes)."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    ids = [f"backlog-{n:05d}-{uuid.uuid4().hex[:8]}" for n in range(count)]
    moments = [start + dt.timedelta(milliseconds=n) for n in range(count)]
    with ledger.engine.begin() as connection:
        connection.execute(
            ledger_tables.sagas.insert(),
            [
                {
                    "saga_id": saga_id,
                    "saga_name": report,
                    "parameters": {},
                    "state": state.value,
                    "run_id": run_id,
                    "created_at": moment,
                    "updated_at": moment,
                }
                for saga_id, moment in zip(ids, moments, strict=True)
            ],
        )
        connection.execute(
            ledger_tables.runs.insert(),
            [
                {
                    "saga_id": saga_id,
                    "run_id": run_id,
                    "kind": RunKind.RUN.value,
                    "linked_at": moment,
                }
                for saga_id, moment in zip(ids, moments, strict=True)
            ],
        )
    return ids


def run_steps(
    reports: SagaCoordinator,
    runner: StepRunner,
    saga_id: str,
    *,
    run_id: str | None,
    parameters: Mapping[str, Any] = CHAIN_PARAMETERS,
) -> str | None:
    """Start the saga and run its steps in the report's order, as the orchestrator would; the
    first step that fails is compensated. Returns that step, or None if every step succeeded."""
    saga = reports.saga(saga_id, run_id=run_id, runner=runner)
    saga.start(dict(parameters))
    for name in reports.definition.order():
        try:
            saga.execute_step(name)
        except StepError as error:
            saga.compensate(FailureKind.STEP_FAILED, failed_step=name, error=str(error))
            return name
    return None


def state_of(ledger: SqlLedger, saga_id: str) -> SagaState:
    saga = ledger.get_saga(saga_id)
    assert saga is not None, f"no saga {saga_id}"
    return saga.state


def run_chain(ledger: SqlLedger, saga_id: str, runner: ScriptedRunner | None = None) -> SagaState:
    """Every step of the CHAIN saga in order (run `run-<saga id>`); the first failure compensates.
    The state it ends in."""
    run_steps(coordinator(ledger), runner or ScriptedRunner(), saga_id, run_id=f"run-{saga_id}")
    return state_of(ledger, saga_id)


def chain_saga_in(ledger: SqlLedger, saga_id: str, state: SagaState) -> None:
    """A CHAIN saga left in `state` by the saga engine: an end state by running its steps (with
    write_report failing, and create_temp's undo too, where the state needs it), any other by
    stopping it while write_report runs."""
    if state == SagaState.SUCCEEDED:
        run_chain(ledger, saga_id)
    elif state == SagaState.COMPENSATED:
        run_chain(ledger, saga_id, ScriptedRunner(action_failures={"write_report": [permanent()]}))
    elif state == SagaState.FAILED_NEEDS_MANUAL:
        run_chain(
            ledger,
            saga_id,
            ScriptedRunner(
                action_failures={"write_report": [permanent()]},
                always_fail_compensation={"create_temp"},
            ),
        )
    else:
        run_id = f"run-{saga_id}"
        saga = coordinator(ledger).saga(saga_id, run_id=run_id, runner=ScriptedRunner())
        saga.start(CHAIN_PARAMETERS)
        saga.execute_step("create_temp")
        # write_report is under way: its attempt is open
        ledger.start_attempt(
            saga_id, "write_report", AttemptKind.ACTION, run_id, 1, require_running=True
        )
        if state != SagaState.RUNNING:
            saga.stop(_stop_for(state), failed_step="write_report", error="boom")
        if state == SagaState.COMPENSATING:
            ledger.transition(
                saga_id, {SagaState.FAILED}, SagaState.COMPENSATING, "compensation started", run_id
            )
    assert state_of(ledger, saga_id) == state
