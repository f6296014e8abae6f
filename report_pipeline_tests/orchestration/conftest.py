"""Reports run as real Dagster jobs: multiprocess executor, Postgres run storage, the local
engine."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import pytest
import trino
import yaml

from report_pipeline.fault_proxy import FaultProxy
from report_pipeline.local_trino import LocalTrino
from report_pipeline.orchestration.names import SAGA_ID_TAG
from report_pipeline.reporting import REPORTS_DIR, load_reports
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.saga.scratch_names import saga_key
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.orchestration.statements import step_statements
from report_pipeline_tests.saga.conftest import isolated_schema_url

if TYPE_CHECKING:
    from report_pipeline_tests.orchestration.receiver import Receiver
    from report_pipeline_tests.orchestration.stack import DagsterStack

DAILY_PARAMETERS = {"start_date": "2026-01-01", "end_date": "2026-01-31", "min_events": 5}
WEEKLY_PARAMETERS = {"week_start": "2026-01-05", "min_active_days": 2}
PARAMETERS = {
    "daily_country_report": DAILY_PARAMETERS,
    "weekly_engagement_report": WEEKLY_PARAMETERS,
}

REPORTS = load_reports()
# The pattern of each step's statement a test strikes (its action's last), derived from the specs.
STEP_STATEMENTS = {name: step_statements(spec) for name, spec in REPORTS.items()}


# The shipped reports with test-sized limits: same SQL, short time limits and quick retries.
STEP_TIMEOUT_SECONDS = 6
RETRY = {"max_retries": 2, "delay_seconds": 0.2, "backoff": 1.5}
# The webserver and daemon's copy: a statement's limit outlasts a compensation run (launched by the
# backstop), as in production, so a statement left running would outlive the undo unless stopped.
STACK_STEP_TIMEOUT_SECONDS = 90


def write_test_reports(root: Path, timeout_seconds: float) -> Path:
    for folder in (p for p in REPORTS_DIR.iterdir() if (p / "report.yaml").is_file()):
        shutil.copytree(folder, root / folder.name)
        spec_path = root / folder.name / "report.yaml"
        document = yaml.safe_load(spec_path.read_text())
        for step in document["steps"].values():
            step.update(timeout_seconds=timeout_seconds, retry=RETRY)
        # the shared daemon must not start runs of its own while tests inject faults
        document.pop("schedule", None)
        document.pop("arrival", None)
        spec_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return root


@pytest.fixture(scope="session")
def test_reports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_reports(tmp_path_factory.mktemp("reports"), STEP_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def pipeline_env(
    trino_proxy: FaultProxy,
    local_trino: LocalTrino,
    postgres_url: str,
    postgres_database: dict,
    test_reports_dir: Path,
) -> Iterator[dict[str, str]]:
    """The environment the code location reads, for this process and the processes it starts: Trino
    is the fault proxy, whose upstream a test's `backend` chooses (the local engine by default)."""
    db = postgres_database
    env = {
        "TRINO_HOST": trino_proxy.host,
        "TRINO_PORT": str(trino_proxy.port),
        "TRINO_USER": "pipeline-tests",
        "TRINO_CATALOG": local_trino.catalog,
        "REPORT_PIPELINE_LEDGER_URL": postgres_url,
        "REPORT_PIPELINE_LOG_FORMAT": "json",
        "REPORT_PIPELINE_REPORTS_DIR": str(test_reports_dir),
        "DAGSTER_PG_HOST": db["host"],
        "DAGSTER_PG_PORT": str(db["port"]),
        "DAGSTER_PG_USERNAME": db["user"],
        "DAGSTER_PG_PASSWORD": db["password"],
        "DAGSTER_PG_DB": db["dbname"],
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def postgres_storage(db: dict) -> dict:
    """The instance's `storage` setting for the database `db` (as `postgres_database` gives it)."""
    return {
        "postgres": {
            "postgres_db": {
                "username": db["user"],
                "password": db["password"],
                "hostname": db["host"],
                "db_name": db["dbname"],
                "port": db["port"],
                "scheme": "postgresql+psycopg2",
            }
        }
    }


@pytest.fixture(scope="session")
def dagster_instance(pipeline_env: dict, postgres_database: dict) -> Iterator[dg.DagsterInstance]:
    """A real Dagster instance whose run and event storage is the session's Postgres database."""
    storage = postgres_storage(postgres_database)
    with dg.instance_for_test(overrides={"storage": storage}) as instance:
        yield instance


@pytest.fixture(scope="session")
def ledger(pipeline_env: dict) -> Iterator[SqlLedger]:
    ledger = SqlLedger(pipeline_env["REPORT_PIPELINE_LEDGER_URL"])
    ledger.migrate()
    yield ledger
    ledger.close()


def launch(
    instance: dg.DagsterInstance,
    report: str,
    parameters: dict | None = None,
    reexecute_from: str | None = None,
) -> dg.DagsterRun:
    """Run a report's job as a launch would (reconstructable, its own executor) and wait for it."""
    job = dg.build_reconstructable_job(
        "report_pipeline.definitions", "report_job", reconstructable_args=(report,)
    )
    if reexecute_from:
        execution = dg.execute_job(
            job,
            instance=instance,
            reexecution_options=dg.ReexecutionOptions.from_failure(reexecute_from, instance),
        )
    else:
        execution = dg.execute_job(
            job,
            instance=instance,
            run_config=start_saga_config(parameters or PARAMETERS[report]),
        )
    with execution as result:
        run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def saga_of(run: dg.DagsterRun) -> str:
    return run.tags[SAGA_ID_TAG]


def scratch_tables(engine: LocalTrino, saga_id: str) -> list[str]:
    rows = query(
        engine,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'scratch' "
        "AND table_name LIKE ?",
        [f"saga_{saga_key(saga_id)}_%"],
    )
    return [r[0] for r in rows]


def report_rows(engine: LocalTrino, report: str, saga_id: str) -> list[list]:
    exists = query(
        engine,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'reports' "
        "AND table_name = ?",
        [report],
    )[0][0]
    if not exists:
        return []
    return query(
        engine, f"SELECT * FROM reports.{report} WHERE saga_id = ?", [saga_id]
    )  # report names are ours


def query(engine: LocalTrino, sql: str, parameters: list | None = None) -> list[list]:
    with trino.dbapi.connect(
        host=engine.host,
        port=engine.port,
        user="assertions",
        catalog=engine.catalog,
        schema="analytics",
    ) as connection:
        cursor = connection.cursor()
        cursor.execute(sql, parameters or [])
        return cursor.fetchall()


def step_events(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> list:
    return [
        r.event_log_entry for r in instance.get_records_for_run(run_id, of_type=event_type).records
    ]


@pytest.fixture(scope="session")
def stack_alerts() -> Iterator[Receiver]:
    """The webhook the shared daemon posts its alerts to."""
    from report_pipeline_tests.orchestration.receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def dagster_stack(
    pipeline_env: dict, stack_alerts, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DagsterStack]:
    """One webserver and one daemon for every test that needs them."""
    from report_pipeline_tests.orchestration.stack import DagsterStack

    env = {
        **pipeline_env,
        "REPORT_PIPELINE_ALERT_WEBHOOK_URL": stack_alerts.url,
        "REPORT_PIPELINE_ALERT_FORMAT": "json",
        "REPORT_PIPELINE_REPORTS_DIR": str(
            write_test_reports(tmp_path_factory.mktemp("stack-reports"), STACK_STEP_TIMEOUT_SECONDS)
        ),
    }
    stack = DagsterStack(tmp_path_factory.mktemp("dagster-home"), env).start()
    yield stack
    stack.stop()


@pytest.fixture
def backlog_ledger(postgres_url: str) -> Iterator[SqlLedger]:
    """A ledger of its own (a fresh schema), for a backlog no daemon of the session must act on."""
    ledger = SqlLedger(isolated_schema_url(postgres_url))
    ledger.migrate()
    yield ledger
    ledger.close()
