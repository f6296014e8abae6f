"""A real dagster-webserver and dagster-daemon on PostgreSQL, driven over GraphQL as the UI drives
them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import requests

from report_pipeline_tests.conftest import free_port, wait_for

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
ENDED_TICK = {"SUCCESS", "SKIPPED"}  # a tick that FAILED did not do its work
SELECTOR = {"repositoryLocationName": "report_pipeline", "repositoryName": "__repository__"}


class DagsterStack:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # the production settings
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        # not DAGSTER_HOME/logs: Dagster's processes move that folder away to upload it as telemetry
        self.logs = home / "process-logs"
        self.logs.mkdir(exist_ok=True)
        self.processes: list[subprocess.Popen] = []

    def start(self) -> DagsterStack:
        bin_dir = Path(sys.executable).parent
        self.processes.append(
            self._spawn(
                "webserver",
                [
                    str(bin_dir / "dagster-webserver"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-w",
                    self._workspace,
                ],
            )
        )
        self.processes.append(
            self._spawn("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", self._workspace])
        )
        self._wait_until_ready()
        return self

    @property
    def _workspace(self) -> str:
        return str(PROJECT_ROOT / "workspace.yaml")

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        # the child writes to its own copy of the file: ours is closed once it started
        with open(self.logs / f"{name}.log", "a") as log:
            return subprocess.Popen(
                command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart_daemon(self) -> None:
        """Stop the daemon (its sensors lose any state held in memory) and start a new one."""
        daemon = self.processes.pop()
        os.killpg(daemon.pid, signal.SIGTERM)
        _reap(daemon)
        bin_dir = Path(sys.executable).parent
        self.processes.append(
            self._spawn("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", self._workspace])
        )
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 120) -> None:
        if wait_for(self._ready, timeout, interval=1) is None:
            raise RuntimeError(f"webserver/daemon not ready in {timeout}s: {self.tail()}")

    def _ready(self) -> bool:
        """The location's jobs are served and the daemon's sensors and run queue are healthy."""
        for process in self.processes:
            if process.poll() is not None:
                raise RuntimeError(f"a Dagster process exited: {self.tail()}")
        try:
            jobs = self.graphql(
                "{ repositoryOrError(repositorySelector: {repositoryLocationName: "
                '"report_pipeline", repositoryName: "__repository__"}) '
                "{ ... on Repository { jobs { name } } } }"
            )
            if not jobs["repositoryOrError"].get("jobs"):
                return False
            daemons = self.graphql(
                "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
            )["instance"]["daemonHealth"]
        except (requests.RequestException, KeyError, TypeError):
            return False
        statuses = {d["daemonType"]: d["healthy"] for d in daemons["allDaemonStatuses"]}
        return bool(statuses.get("SENSOR") and statuses.get("QUEUED_RUN_COORDINATOR"))

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs.glob("*.log"))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            _reap(process)

    # --- GraphQL, as the UI sends it ------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise RuntimeError(body["errors"])
        return body["data"]

    def launch(self, job: str, run_config: dict) -> str:
        data = self.graphql(
            """mutation($p: ExecutionParams!) { launchPipelineExecution(executionParams: $p) {
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message }
            ... on RunConfigValidationInvalid { errors { message } } } }""",
            {"p": {"selector": {**SELECTOR, "pipelineName": job}, "runConfigData": run_config}},
        )
        result = data["launchPipelineExecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(result)
        return result["run"]["runId"]

    def reexecute(self, parent_run_id: str, strategy: str = "FROM_FAILURE") -> str:
        data = self.graphql(
            """mutation($p: ReexecutionParams!) { launchPipelineReexecution(reexecutionParams: $p) {
            __typename ... on LaunchRunSuccess { run { runId } }
            ... on PythonError { message } } }""",
            {"p": {"parentRunId": parent_run_id, "strategy": strategy}},
        )
        result = data["launchPipelineReexecution"]
        if result["__typename"] != "LaunchRunSuccess":
            raise RuntimeError(result)
        return result["run"]["runId"]

    def terminate(self, run_id: str) -> None:
        data = self.graphql(
            """mutation($id: String!) { terminateRun(runId: $id) { __typename
            ... on TerminateRunFailure { message } ... on PythonError { message } } }""",
            {"id": run_id},
        )
        if data["terminateRun"]["__typename"] != "TerminateRunSuccess":
            raise RuntimeError(data["terminateRun"])

    def status(self, run_id: str) -> str:
        return self.graphql(
            "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }", {"id": run_id}
        )["runOrError"]["status"]

    def wait_for_run(self, run_id: str, timeout: float = 120, statuses: set[str] = TERMINAL) -> str:
        seen: list[str] = []

        def reached() -> bool:
            seen.append(self.status(run_id))
            return seen[-1] in statuses

        if wait_for(reached, timeout, interval=0.25) is None:
            raise TimeoutError(f"run {run_id} still {seen[-1]} after {timeout}s\n{self.tail()}")
        return seen[-1]

    def sensor_ticks(self, sensor: str, since: float) -> list[dict]:
        """The sensor's ticks that started after `since` (epoch seconds): `timestamp`, `status`."""
        data = self.graphql(
            """query($s: SensorSelector!, $since: Float) { sensorOrError(sensorSelector: $s) {
            __typename ... on Sensor { sensorState { ticks(afterTimestamp: $since, limit: 100) {
            timestamp status } } } ... on PythonError { message } } }""",
            {"s": {**SELECTOR, "sensorName": sensor}, "since": since},
        )["sensorOrError"]
        if data["__typename"] != "Sensor":
            raise RuntimeError(data)
        return data["sensorState"]["ticks"]

    def wait_for_ticks(self, sensor: str, count: int, since: float, timeout: float = 120) -> None:
        """Wait until `count` ticks of the sensor started after `since` have ended (each did all
        it had to do: evaluated, requested, delivered)."""

        def ended() -> bool:
            ticks = self.sensor_ticks(sensor, since)
            return sum(t["status"] in ENDED_TICK for t in ticks) >= count

        if wait_for(ended, timeout, interval=0.5) is None:
            raise TimeoutError(
                f"{sensor}: fewer than {count} ticks ended in {timeout}s "
                f"({self.sensor_ticks(sensor, since)})\n{self.tail()}"
            )


def _reap(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """Wait for a stopped webserver or daemon, then kill what its process group still holds (the
    code server it started outlives a SIGTERM to the group). The leader is left unreaped until then,
    so the group id cannot have passed to another process."""
    wait_for(
        lambda: (
            process.returncode is not None
            or os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
        ),
        grace_seconds,
        interval=0.1,
    )  # (within the grace or not: what the group still holds is killed next)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
