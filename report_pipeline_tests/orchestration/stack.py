"""A real dagster-webserver and dagster-daemon on PostgreSQL, driven over GraphQL as the UI drives them."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from report_pipeline_tests.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
SELECTOR = {"repositoryLocationName": "report_pipeline", "repositoryName": "__repository__"}


class DagsterStack:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # the production settings
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.logs = home / "logs"
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
        log = open(self.logs / f"{name}.log", "a")
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Dagster process exited: {self.tail()}")
            try:
                jobs = self.graphql(
                    "{ repositoryOrError(repositorySelector: {repositoryLocationName: "
                    '"report_pipeline", repositoryName: "__repository__"}) '
                    "{ ... on Repository { jobs { name } } } }"
                )
                if jobs["repositoryOrError"].get("jobs"):
                    daemons = self.graphql(
                        "{ instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"
                    )["instance"]["daemonHealth"]
                    statuses = {d["daemonType"]: d["healthy"] for d in daemons["allDaemonStatuses"]}
                    if statuses.get("SENSOR") and statuses.get("QUEUED_RUN_COORDINATOR"):
                        return
            except (requests.RequestException, KeyError, TypeError):
                pass
            time.sleep(1)
        raise RuntimeError(f"webserver/daemon not ready in {timeout}s: {self.tail()}")

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
            __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status(run_id)
            if status in statuses:
                return status
            time.sleep(0.25)
        raise TimeoutError(
            f"run {run_id} still {self.status(run_id)} after {timeout}s\n{self.tail()}"
        )


def _reap(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """Wait for a stopped webserver or daemon, then kill what its process group still holds (the code
    server it started outlives a SIGTERM to the group). The leader is left unreaped until then, so the
    group id cannot have passed to another process."""
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline and process.returncode is None:
        if os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
