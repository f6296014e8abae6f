"""Sagas in every state, made with the real saga engine and ledger (PostgreSQL and SQLite)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from report_pipeline.saga import AttemptKind, FailureKind, SagaState, StepError
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline_tests.conftest import free_port
from report_pipeline_tests.saga.conftest import ScriptedRunner, coordinator, ledger, permanent  # noqa: F401

PARAMETERS = {"day": "2026-01-01"}
PASSWORD = "s3cret-ledger-pw"  # in the URLs of unreachable ledgers: no message may show it


def ledger_url(host_port: str) -> str:
    return f"postgresql+psycopg2://report_pipeline:{PASSWORD}@{host_port}/ledger"


@pytest.fixture
def hung_postgres() -> Iterator[str]:
    """host:port of a server that accepts connections and never says a word (a hung PostgreSQL)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # the listening socket was shut down: the test is over
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join(timeout=5)
    for connection in held:
        connection.close()


@pytest.fixture
def down_postgres() -> str:
    """host:port where nothing listens (PostgreSQL down): connections are refused at once."""
    return f"127.0.0.1:{free_port()}"


def run_chain(ledger: SqlLedger, saga_id: str, runner: ScriptedRunner | None = None) -> SagaState:
    """Every step of the CHAIN saga in order; the first failure compensates. The state it ends in."""
    saga = coordinator(ledger)
    runner = runner or ScriptedRunner()
    saga.start(saga_id, PARAMETERS, f"run-{saga_id}")
    for name in saga.definition.order():
        try:
            saga.execute_step(saga_id, name, f"run-{saga_id}", 1, runner)
        except StepError as error:
            return saga.compensate(
                saga_id,
                FailureKind.STEP_FAILED,
                runner,
                run_id=f"run-{saga_id}",
                failed_step=name,
                error=str(error),
            )
    return ledger.get_saga(saga_id).state


def make_saga(ledger: SqlLedger, saga_id: str, state: SagaState) -> None:
    """A CHAIN saga left in `state`, as the engine would leave it."""
    saga = coordinator(ledger)
    run_id = f"run-{saga_id}"
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
        saga.start(saga_id, PARAMETERS, run_id)
        saga.execute_step(saga_id, "create_temp", run_id, 1, ScriptedRunner())
        # write_report is under way: its attempt is open
        ledger.start_attempt(
            saga_id, "write_report", AttemptKind.ACTION, run_id, 1, require_running=True
        )
        kind = {
            SagaState.FAILED: FailureKind.STEP_FAILED,
            SagaState.TIMED_OUT: FailureKind.TIMED_OUT,
            SagaState.CANCELLED: FailureKind.CANCELLED,
            SagaState.COMPENSATING: FailureKind.STEP_FAILED,
        }
        if state in kind:
            saga.stop(saga_id, kind[state], run_id=run_id, failed_step="write_report", error="boom")
        if state == SagaState.COMPENSATING:
            ledger.transition(
                saga_id, {SagaState.FAILED}, SagaState.COMPENSATING, "compensation started", run_id
            )
    assert ledger.get_saga(saga_id).state == state
