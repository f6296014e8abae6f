"""B1-B5 and B7: what the orchestration costs, how fast it recovers, how it holds under load.

Everything runs here for real: the local engine over HTTP, a fresh PostgreSQL database holding the
Dagster instance (the repository's dagster.yaml) and the saga ledger, and for B3-B5 a real
dagster-webserver and dagster-daemon driven over GraphQL as the UI drives them.

- B1 `daily_country_report` (a chain) through Dagster (`execute_job`, each executor) and
  `weekly_engagement_report` (branches, its default executor) against a bare script sending the
  same statements with the `trino` client, alternating runs; on the local engine and, with the
  default executors, on a real Trino 476. Both go through the fault proxy the code location talks
  to (so the proxy's cost is in both sides of the ratio).
- B2 from the failing step's end to the saga's COMPENSATED, minus the undo statements' own time
  (local engine and real Trino).
- B3 from `terminateRun` to the engine's statement stopping.
- B4 from `kill -9` of the run worker to the saga's COMPENSATED, at least 10 kills.
- B5 many runs submitted at once with a pool of 3.
- B7 from the GraphQL launch to the report's first statement reaching Trino (local and real).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg2
import trino
import yaml

from report_pipeline.fault_proxy import FaultProxy
from report_pipeline.local_trino import Fault, LocalTrino
from report_pipeline.orchestration.jobs import MULTIPROCESS_EXECUTOR, build_report_job, executor_for
from report_pipeline.orchestration.resources import STEP_SOURCE
from report_pipeline.pgbouncer import PgBouncer
from report_pipeline.reporting import REPORTS_DIR, load_reports
from report_pipeline.saga import AttemptKind, AttemptStatus, SagaState
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.trino.sql import render
from report_pipeline.trino_server import TrinoServer, ensure_installed
from report_pipeline_tests.builders import start_saga_config
from report_pipeline_tests.conftest import PG, POSTGRES, free_port, wait_for
from report_pipeline_tests.orchestration.stack import TERMINAL
from report_pipeline_tests.orchestration.statements import sent_in_order, step_statements

REPORT = "daily_country_report"  # a chain: every benchmark's report
BRANCHING_REPORT = "weekly_engagement_report"  # parallel branches: B1's second report
PARAMETERS = {
    REPORT: {"start_date": "2026-01-01", "end_date": "2026-03-31", "min_events": 5},
    BRANCHING_REPORT: {"week_start": "2026-01-05", "min_active_days": 2},
}
ROOT = Path(__file__).resolve().parents[2]
STATEMENT = step_statements(load_reports()[REPORT])  # each step's statement, as a pattern
B4_MIN_KILLS = 10  # B4's goal is about every run, so it needs a sample of its own
CATALOG = "lake"
DEFAULT_EXECUTOR = "in-process [a chain's default]"
BRANCHES_EXECUTOR = "multiprocess (forkserver, preloaded) [branches' default]"
DIRECT_STORAGE = "in-process, Dagster's storage without PgBouncer"
EXECUTORS = {
    DEFAULT_EXECUTOR: dg.in_process_executor,
    "multiprocess (spawn)": dg.multiprocess_executor.configured({"max_concurrent": 4}),
    BRANCHES_EXECUTOR: MULTIPROCESS_EXECUTOR,
}
assert executor_for(load_reports()[REPORT]) is EXECUTORS[DEFAULT_EXECUTOR]
assert executor_for(load_reports()[BRANCHING_REPORT]) is EXECUTORS[BRANCHES_EXECUTOR]


def report_job_with(report: str, executor: str) -> dg.JobDefinition:
    """The report's job with one of EXECUTORS (reconstructable target for B1)."""
    from report_pipeline.definitions import defs

    spec = load_reports(Path(os.environ["REPORT_PIPELINE_REPORTS_DIR"]))[report]
    return dg.Definitions(
        jobs=[build_report_job(spec, EXECUTORS[executor])], resources=defs.resources
    ).resolve_job_def(report)


# --- set-up -------------------------------------------------------------------------------------
@contextmanager
def environment(events: int) -> Iterator[dict[str, Any]]:
    """A fresh database, the engine, the reports without schedules or sensors, DAGSTER_HOME."""
    work = Path(tempfile.mkdtemp(prefix="report-pipeline-bench-"))
    name = f"report_pipeline_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect(dbname="postgres", connect_timeout=5, **PG)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    reports = work / "reports"
    for folder in (p for p in REPORTS_DIR.iterdir() if (p / "report.yaml").is_file()):
        shutil.copytree(folder, reports / folder.name)
        spec_path = reports / folder.name / "report.yaml"
        document = yaml.safe_load(spec_path.read_text())
        document.pop("schedule", None)  # the daemon must start no runs of its own meanwhile
        document.pop("arrival", None)
        spec_path.write_text(yaml.safe_dump(document, sort_keys=False))
    home = work / "dagster-home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    auth = PG["user"] + (f":{PG['password']}" if PG["password"] else "")
    saved = dict(os.environ)
    try:
        installation = ensure_installed()
        with (
            LocalTrino(
                data=str(work / "lake.duckdb"), sample_events=events, fault_injection=True
            ) as engine,
            FaultProxy(engine.url) as proxy,
            TrinoServer(
                installation,
                work / "trino",
                POSTGRES,
                port=free_port(),
                lake_database=f"{name}_lake",
                iceberg_database=f"{name}_iceberg",
                sample_events=events,
            ) as real_trino,
            PgBouncer(POSTGRES, free_port()) as bouncer,
        ):
            os.environ.update(
                {
                    "TRINO_HOST": proxy.host,
                    "TRINO_PORT": str(proxy.port),
                    "TRINO_USER": "bench",
                    "TRINO_CATALOG": engine.catalog,
                    "REPORT_PIPELINE_REPORTS_DIR": str(reports),
                    "REPORT_PIPELINE_LEDGER_URL": (
                        f"postgresql+psycopg2://{auth}@{PG['host']}:{PG['port']}/{name}"
                    ),
                    "REPORT_PIPELINE_LOG_FORMAT": "json",
                    "DAGSTER_HOME": str(home),
                    # direct for the instance B1 compares with; then through PgBouncer, as
                    # `make dev` and the compose stack run
                    "DAGSTER_PG_HOST": PG["host"],
                    "DAGSTER_PG_PORT": str(PG["port"]),
                    "DAGSTER_PG_USERNAME": PG["user"],
                    "DAGSTER_PG_PASSWORD": PG["password"],
                    "DAGSTER_PG_DB": name,
                }
            )
            ledger = SqlLedger(os.environ["REPORT_PIPELINE_LEDGER_URL"])
            ledger.migrate()
            direct = dg.DagsterInstance.get()  # its storage's URL is read now, from the environment
            os.environ["DAGSTER_PG_HOST"] = bouncer.host
            os.environ["DAGSTER_PG_PORT"] = str(bouncer.port)
            with direct, dg.DagsterInstance.get() as instance:
                yield {
                    "direct": direct,
                    "engine": engine,
                    "ledger": ledger,
                    "instance": instance,
                    "home": home,
                    "work": work,
                    "proxy": proxy,
                    "trino": real_trino,
                }
            ledger.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        with admin.cursor() as cursor:
            for database in (name, f"{name}_lake", f"{name}_iceberg"):
                cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


def _launch(
    instance: dg.DagsterInstance, executor: str | None = None, report: str = REPORT
) -> dg.DagsterRun:
    if executor is None:
        job = dg.build_reconstructable_job(
            "report_pipeline.definitions", "report_job", reconstructable_args=(report,)
        )
    else:
        job = dg.build_reconstructable_job(
            __name__,
            "report_job_with",
            # typed as a 1-tuple in dagster, but any tuple of the factory's arguments is taken
            reconstructable_args=(report, executor),  # type: ignore[arg-type]
        )
    config = start_saga_config(PARAMETERS[report])
    with dg.execute_job(job, instance=instance, run_config=config) as result:
        run = instance.get_run_by_id(result.run_id)
    assert run is not None
    return run


def _bare_script(engine: FaultProxy, report: str) -> float:
    """The report's statements in order with the `trino` client, as a hand-written script would."""
    spec = load_reports(Path(os.environ["REPORT_PIPELINE_REPORTS_DIR"]))[report]
    saga_id = str(uuid.uuid4())
    tables = spec.scratch_tables(saga_id, CATALOG, "scratch")
    values = {**spec.parse_parameters(PARAMETERS[report]), "saga_id": saga_id}
    files = [file for _, file in sent_in_order(spec)]
    started = time.perf_counter()
    with trino.dbapi.connect(
        host=engine.host, port=engine.port, user="bench", catalog=CATALOG, schema="analytics"
    ) as connection:
        cursor = connection.cursor()
        for file in files:
            statement = render(spec.sql_text(file), tables, values)
            cursor.execute(statement.sql, statement.parameters)
            cursor.fetchall()
    return time.perf_counter() - started


def _timed_run(instance: dg.DagsterInstance, executor: str, report: str) -> float:
    started = time.perf_counter()
    run = _launch(instance, executor, report)
    elapsed = time.perf_counter() - started
    assert run.status == dg.DagsterRunStatus.SUCCESS, f"{report}, {executor}: {run.status}"
    return elapsed


# --- B1, B2 -------------------------------------------------------------------------------------
def b1_overhead(
    setup: dict, repeats: int, variants: dict[str, tuple[str, str]], report: str = REPORT
) -> dict[str, Any]:
    """`variants`: label -> (one of EXECUTORS, the setup's instance to run on)."""
    proxy = setup["proxy"]
    runs = {
        label: partial(_timed_run, setup[instance], executor, report)
        for label, (executor, instance) in variants.items()
    }
    _bare_script(proxy, report)
    for run in runs.values():  # warm-up: caches, forkserver and module imports on disk
        run()
    times: dict[str, list[float]] = {"bare": [], **{label: [] for label in runs}}
    for _ in range(repeats):  # alternating, so every variant sees the same machine state
        times["bare"].append(_bare_script(proxy, report))
        for label, run in runs.items():
            times[label].append(run())
    return {
        "bare": statistics.median(times.pop("bare")),
        "medians": {label: statistics.median(values) for label, values in times.items()},
        "steps": len(load_reports()[report].steps),
        "report": report,
        "all": times,
    }


def b2_failure_to_compensated(setup: dict, repeats: int) -> dict[str, Any]:
    proxy, instance, ledger = setup["proxy"], setup["instance"], setup["ledger"]
    figures = []
    for _ in range(repeats):
        proxy.inject(
            Fault(pattern=STATEMENT["write_report"], action="error", error_name="PERMISSION_DENIED")
        )
        run = _launch(instance)
        saga_id = run.run_id
        attempts = ledger.attempts(saga_id)
        [failed] = [
            a for a in attempts if a.step == "write_report" and a.kind == AttemptKind.ACTION
        ]
        undos = [a for a in attempts if a.kind == AttemptKind.COMPENSATION]
        compensated = [
            t.at for t in ledger.transitions(saga_id) if t.new_state == SagaState.COMPENSATED
        ]
        assert compensated and failed.status == AttemptStatus.FAILED, (
            f"saga {saga_id} did not compensate"
        )
        undo_seconds = sum((a.ended_at - a.started_at).total_seconds() for a in undos)
        figures.append((compensated[0] - failed.ended_at).total_seconds() - undo_seconds)
    return {"median": statistics.median(figures), "all": figures}


# --- B3-B5 on the real webserver and daemon -----------------------------------------------------
def _running_statement(engine: LocalTrino, pattern: str, timeout: float = 120):
    found: list[Any] = []

    def started() -> bool:
        found[:] = [
            q
            for q in engine.engine.queries()
            if re.search(pattern, q.sql) and q.state.value == "RUNNING"
        ]
        return bool(found)

    if wait_for(started, timeout) is None:
        raise TimeoutError(f"no statement matching {pattern} started within {timeout}s")
    return found[0]


def _state(ledger: SqlLedger, saga_id: str) -> SagaState:
    saga = ledger.get_saga(saga_id)
    assert saga is not None, f"no saga {saga_id}"
    return saga.state


def _saga_ended(ledger: SqlLedger, saga_id: str) -> bool:
    return _state(ledger, saga_id).terminal


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    if wait_for(condition, timeout, interval=0.05) is None:
        raise TimeoutError("condition not met in time")


def b3_terminate_to_stopped(stack, engine: LocalTrino, repeats: int) -> dict[str, Any]:
    figures = []
    for _ in range(repeats):
        engine.inject(Fault(pattern=STATEMENT["create_summary"], action="stall", seconds=120))
        run_id = stack.launch(REPORT, start_saga_config(PARAMETERS[REPORT]))
        statement = _running_statement(engine, STATEMENT["create_summary"])
        started = time.monotonic()
        stack.terminate(run_id)
        statement.stopped.wait(30)
        figures.append(time.monotonic() - started)
        stack.wait_for_run(run_id, timeout=120)
        engine.engine.faults.clear()
    return {"median": statistics.median(figures), "all": figures}


def b4_kill_to_compensated(
    stack, engine: LocalTrino, ledger: SqlLedger, repeats: int
) -> dict[str, Any]:
    from report_pipeline_tests.orchestration.test_durability import run_worker_pid

    figures = []
    for _ in range(repeats):
        engine.inject(Fault(pattern=STATEMENT["write_report"], action="stall", seconds=5))
        run_id = stack.launch(REPORT, start_saga_config(PARAMETERS[REPORT]))
        _running_statement(engine, STATEMENT["write_report"])
        pid = run_worker_pid(stack, run_id)
        killed = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        _wait(partial(_saga_ended, ledger, run_id), timeout=120)
        figures.append(time.monotonic() - killed)
        assert _state(ledger, run_id) == SagaState.COMPENSATED
        engine.engine.faults.clear()
    return {"median": statistics.median(figures), "max": max(figures), "all": figures}


def _arrived(proxy: FaultProxy, pattern: str, since: float, timeout: float = 120) -> float:
    """When the first statement matching `pattern` sent after `since` (wall clock) was accepted by
    the engine behind the proxy (the proxy notes it as the engine answers the POST)."""
    found: list[float] = []

    def arrived() -> bool:
        found[:] = [
            s.submitted_at
            for s in proxy.statements()
            if s.submitted_at >= since and re.search(pattern, s.sql)
        ]
        return bool(found)

    if wait_for(arrived, timeout, interval=0.01) is None:
        raise TimeoutError(f"no statement matching {pattern} arrived within {timeout}s")
    return min(found)


# B7's phases: where the time from the launch to the first statement goes, from the run's own
# events; each phase ends at its event (the last one at the statement's arrival at Trino)
B7_PHASES = {
    "webserver, to the queue": dg.DagsterEventType.RUN_ENQUEUED,
    "run queue and launch (daemon)": dg.DagsterEventType.RUN_STARTING,
    "run worker start (Python, dagster, the code location)": dg.DagsterEventType.RUN_START,
    "resources and the start op": dg.DagsterEventType.STEP_START,
}


def _phases(
    instance: dg.DagsterInstance, run_id: str, launched: float, arrived: float, first_step: str
) -> dict[str, float]:
    times: dict[dg.DagsterEventType, float] = {}
    for entry in instance.all_logs(run_id):
        kind = entry.dagster_event_type
        if kind is None or kind in times:
            continue
        if kind == dg.DagsterEventType.STEP_START and entry.step_key != first_step:
            continue
        times[kind] = entry.timestamp
    phases, since = {}, launched
    for name, kind in B7_PHASES.items():
        if kind in times:  # (a phase whose event is missing counts in the next one)
            phases[name], since = times[kind] - since, times[kind]
    phases["first step, to its statement at Trino"] = arrived - since
    return phases


def b7_launch_latency(
    stack, proxy: FaultProxy, instance: dg.DagsterInstance, repeats: int
) -> dict[str, Any]:
    """From the launch over GraphQL (what the Launchpad sends) to the report's first statement
    reaching the engine: webserver, run queue, daemon, run worker and the start op, all real."""
    first_step = load_reports()[REPORT].saga_definition().order()[0]
    figures, phases = [], []
    for _ in range(repeats):
        launched = time.time()
        run_id = stack.launch(REPORT, start_saga_config(PARAMETERS[REPORT]))
        arrived = _arrived(proxy, STATEMENT[first_step], since=launched)
        figures.append(arrived - launched)
        assert stack.wait_for_run(run_id, timeout=180) == "SUCCESS"
        phases.append(_phases(instance, run_id, launched, arrived, first_step))
    return {
        "median": statistics.median(figures),
        "max": max(figures),
        "all": figures,
        "phases": {
            name: statistics.median(p[name] for p in phases if name in p)
            for name in {name: None for p in phases for name in p}
        },
    }


def b5_load(
    stack, engine: LocalTrino, ledger: SqlLedger, runs: int, pool: int, stall: float
) -> dict[str, Any]:
    dagster = Path(sys.executable).parent / "dagster"
    subprocess.run(
        [str(dagster), "instance", "concurrency", "set", "trino", str(pool)],
        check=True,
        env={**os.environ, **stack.env},
        capture_output=True,
        timeout=120,
    )
    # each step's statement is "heavy": it holds its slot for `stall` s
    for pattern in STATEMENT.values():
        engine.inject(Fault(pattern=pattern, action="stall", seconds=stall, times=None))
    engine.engine.reset_peak()
    started = time.monotonic()
    run_ids = [stack.launch(REPORT, start_saga_config(PARAMETERS[REPORT])) for _ in range(runs)]
    statuses = [stack.wait_for_run(run_id, timeout=3600) for run_id in run_ids]
    elapsed = time.monotonic() - started
    engine.engine.faults.clear()
    states = [_state(ledger, run_id) for run_id in run_ids]
    return {
        "runs": runs,
        "pool": pool,
        "stall_seconds": stall,
        "elapsed_s": elapsed,
        "runs_per_minute": runs / elapsed * 60,
        "peak": engine.engine.peak_running_by_source.get(STEP_SOURCE, 0),
        "succeeded": statuses.count("SUCCESS"),
        "sagas_succeeded": states.count(SagaState.SUCCEEDED),
        "lost": runs - len({r for r, s in zip(run_ids, statuses, strict=True) if s in TERMINAL}),
    }


def main(repeats: int, load_runs: int, events: int) -> tuple[list[list[str]], dict[str, Any]]:
    from report_pipeline_tests.orchestration.stack import DagsterStack

    results: dict[str, Any] = {}
    with environment(events) as setup:
        proxy = setup["proxy"]
        print(
            f"B1: {REPORT} through Dagster (3 executors) and {BRANCHING_REPORT} (its default) "
            f"vs a bare trino-client script, {repeats} alternating runs ...",
            flush=True,
        )
        chain = {e: (e, "instance") for e in EXECUTORS} | {
            DIRECT_STORAGE: (DEFAULT_EXECUTOR, "direct")
        }
        branches = {BRANCHES_EXECUTOR: (BRANCHES_EXECUTOR, "instance")}
        results["b1"] = b1_overhead(setup, repeats, chain)
        results["b1_branches"] = b1_overhead(setup, repeats, branches, BRANCHING_REPORT)
        print(f"B2: failure to COMPENSATED, {repeats} runs ...", flush=True)
        results["b2"] = b2_failure_to_compensated(setup, repeats)
        proxy.upstream_url = setup["trino"].url
        version = setup["trino"].installation.version
        print(f"B1 and B2 on a real Trino {version}, default executors ...", flush=True)
        results["b1_trino"] = b1_overhead(
            setup, repeats, {DEFAULT_EXECUTOR: (DEFAULT_EXECUTOR, "instance")}
        )
        results["b1_branches_trino"] = b1_overhead(setup, repeats, branches, BRANCHING_REPORT)
        results["b2_trino"] = b2_failure_to_compensated(setup, repeats)
        proxy.upstream_url = setup["engine"].url
        print("starting dagster-webserver and dagster-daemon ...", flush=True)
        stack = DagsterStack(setup["home"], {}).start()
        try:
            print(f"B7: launch to the first statement, {repeats} runs ...", flush=True)
            results["b7"] = b7_launch_latency(stack, proxy, setup["instance"], repeats)
            print(f"B3: terminate to statement stopped, {repeats} runs ...", flush=True)
            results["b3"] = b3_terminate_to_stopped(stack, setup["engine"], repeats)
            kills = max(repeats, B4_MIN_KILLS)
            print(f"B4: kill -9 of the run worker to COMPENSATED, {kills} runs ...", flush=True)
            results["b4"] = b4_kill_to_compensated(stack, setup["engine"], setup["ledger"], kills)
            print(f"B5: {load_runs} runs submitted at once, pool 3 ...", flush=True)
            results["b5"] = b5_load(stack, setup["engine"], setup["ledger"], load_runs, 3, 1.0)
            proxy.upstream_url = setup["trino"].url
            print(f"B7 on the real Trino {version}, {repeats} runs ...", flush=True)
            results["b7_trino"] = b7_launch_latency(stack, proxy, setup["instance"], repeats)
            proxy.upstream_url = setup["engine"].url
        finally:
            stack.stop()
    return _table(results, version), results


def _b1_row(b1: dict[str, Any], variant: str, engine: str = "") -> list[str]:
    bare, measured = b1["bare"], b1["medians"][variant]
    per_step = (measured - bare) / b1["steps"] * 1000
    return [
        f"B1 overhead, {b1['report']} ({b1['steps']} steps), {variant}{engine}",
        f"{measured:.2f} s",
        f"{bare:.2f} s bare script",
        f"{measured / bare:.1f}x",
        f"{per_step:.0f} ms/step",
        "<= 150 ms/step",
        _verdict(per_step <= 150),
    ]


def _table(results: dict[str, Any], version: str) -> list[list[str]]:
    rows = [_b1_row(results["b1"], variant) for variant in results["b1"]["medians"]]
    rows.append(_b1_row(results["b1_branches"], BRANCHES_EXECUTOR))
    rows.append(_b1_row(results["b1_trino"], DEFAULT_EXECUTOR, f", real Trino {version}"))
    rows.append(_b1_row(results["b1_branches_trino"], BRANCHES_EXECUTOR, f", real Trino {version}"))
    for key, label, goal in (
        ("b2", "B2 failure -> COMPENSATED (minus undo statements)", 0.5),
        ("b2_trino", f"B2 failure -> COMPENSATED, real Trino {version}", 0.5),
        ("b3", "B3 terminate -> statement stopped", 1.0),
    ):
        median = results[key]["median"]
        verdict = _verdict(median < goal)
        rows.append([label, f"{median:.2f} s", "", "", "", f"< {goal:g} s", verdict])
    b4 = results["b4"]
    rows.append(
        [
            f"B4 kill -9 of run worker -> COMPENSATED ({len(b4['all'])} kills)",
            f"{b4['median']:.2f} s median",
            f"{b4['max']:.2f} s slowest",
            "",
            "",
            "median <= 8 s, every run <= 15 s",
            _verdict(b4["median"] <= 8 and b4["max"] <= 15),
        ]
    )
    for key, label in (("b7", "local engine"), ("b7_trino", f"real Trino {version}")):
        b7 = results[key]
        rows.append(
            [
                f"B7 launch (GraphQL) -> first statement at Trino, {label}",
                f"{b7['median']:.2f} s median",
                f"{b7['max']:.2f} s slowest",
                "",
                "",
                "median <= 3 s",
                _verdict(b7["median"] <= 3),
            ]
        )
    phases = results["b7"]["phases"]
    rows.append(
        [
            "B7 where the time goes (local engine, medians)",
            "",
            "",
            "",
            "; ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items()),
            "",
            "",
        ]
    )
    b5 = results["b5"]
    rows.append(
        [
            f"B5 {b5['runs']} runs at once, pool {b5['pool']} "
            f"({b5['stall_seconds']:g} s per statement)",
            f"{b5['runs_per_minute']:.1f} runs/min",
            f"max {b5['peak']} statements at once",
            "",
            f"{b5['sagas_succeeded']}/{b5['runs']} succeeded, {b5['lost']} lost",
            "<= 3 at once, none lost",
            _verdict(b5["peak"] <= 3 and b5["lost"] == 0 and b5["sagas_succeeded"] == b5["runs"]),
        ]
    )
    return rows


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"
