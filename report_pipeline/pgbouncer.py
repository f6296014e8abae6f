"""PgBouncer in front of PostgreSQL for Dagster's storage: `make dev` starts one (`PgBouncer`), the
compose stack runs one as a service (`report-pipeline pgbouncer`), both from `render_config`.

dagster-postgres opens a new PostgreSQL connection for every storage call (its engines use
NullPool): each event a run writes pays a server backend's start, TLS when the server offers it,
and a SCRAM exchange. Through PgBouncer a client still connects each time, but to PgBouncer, which
hands it an idle server connection; `make bench` measures what that saves.

The saga ledger connects directly: it keeps a pool of its own, and it sets `statement_timeout` as a
startup option, which PgBouncer (1.18, Debian 12) refuses.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import NoReturn

import psycopg2

from report_pipeline.postgres import PostgresSettings

SBIN_PGBOUNCER = "/usr/sbin/pgbouncer"  # Debian's path, not on every user's PATH
TIMEOUT_SECONDS = 10  # PgBouncer's login and server-connect limits, and waits for its process
QUERY_TIMEOUT_SECONDS = 300  # no Dagster storage query runs this long; a hung one is cancelled
POOL_SIZE = 20  # server connections per database: Dagster's processes hold one only per call


class PgBouncerError(RuntimeError):
    """PgBouncer is missing or did not start: one line saying why."""


def pgbouncer_binary() -> str:
    binary = shutil.which("pgbouncer") or (
        SBIN_PGBOUNCER if os.access(SBIN_PGBOUNCER, os.X_OK) else None
    )
    if binary is None:
        raise PgBouncerError("pgbouncer is not installed: run make system-packages")
    return binary


def _quoted(text: str) -> str:
    """A field of PgBouncer's auth file."""
    return '"' + text.replace('"', '""') + '"'


def render_config(
    server: PostgresSettings, listen_host: str, listen_port: int, auth_file: Path
) -> str:
    """pgbouncer.ini: every database of `server`, for its one user, pooled per session."""
    return f"""\
[databases]
* = host={server.host} port={server.port}

[pgbouncer]
listen_addr = {listen_host}
listen_port = {listen_port}
unix_socket_dir =
; a plain-text password in auth_file lets PgBouncer answer the client's SCRAM exchange and run
; its own against the server
auth_type = scram-sha-256
auth_file = {auth_file}
; session pooling: the ledger's and Dagster's session-level advisory locks would leak between
; clients under transaction pooling
pool_mode = session
default_pool_size = {POOL_SIZE}
max_client_conn = {10 * POOL_SIZE}
stats_users = {server.user}
query_timeout = {QUERY_TIMEOUT_SECONDS}
client_login_timeout = {TIMEOUT_SECONDS}
server_connect_timeout = {TIMEOUT_SECONDS}
; the default 15 s would keep clients waiting long after the server answers again
server_login_retry = 1
log_connections = 0
log_disconnections = 0
"""


def write_config(
    directory: Path, server: PostgresSettings, listen_host: str, listen_port: int
) -> Path:
    """The auth file (owner-only: it holds the password) and pgbouncer.ini in `directory`."""
    auth_file = directory / "userlist.txt"
    auth_file.touch(mode=0o600)
    auth_file.write_text(f"{_quoted(server.user)} {_quoted(server.password)}\n")
    ini = directory / "pgbouncer.ini"
    ini.write_text(render_config(server, listen_host, listen_port, auth_file))
    return ini


def _command(ini: Path) -> list[str]:
    command = [pgbouncer_binary(), str(ini)]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; the user it becomes must read its files
        nobody = pwd.getpwnam("nobody")
        for path in (ini.parent, *ini.parent.iterdir()):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        command[1:1] = ["-u", "nobody"]
    return command


def exec_pgbouncer(server: PostgresSettings, listen_host: str, listen_port: int) -> NoReturn:
    """Become PgBouncer in the foreground (the compose service), configured for `server`."""
    ini = write_config(
        Path(tempfile.mkdtemp(prefix="pgbouncer-")), server, listen_host, listen_port
    )
    command = _command(ini)
    os.execv(command[0], command)


class PgBouncer:
    """A private PgBouncer on `listen_host:listen_port` in front of `server`, stopped on exit;
    `settings` reaches the server through it."""

    def __init__(self, server: PostgresSettings, listen_port: int, listen_host: str = "127.0.0.1"):
        self.server = server
        self.host = listen_host
        self.port = listen_port
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> PostgresSettings:
        return PostgresSettings(self.host, self.port, self.server.user, self.server.password)

    def __enter__(self) -> PgBouncer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="report-pipeline-pgbouncer-"))
        ini = write_config(self.directory, self.server, self.host, self.port)
        with (self.directory / "pgbouncer.log").open("wb") as log:
            self._process = subprocess.Popen(
                _command(ini), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise

    def _await_ready(self) -> None:
        """Until PgBouncer serves a real connection; fails at once if it exits."""
        process = self._process
        assert process is not None
        deadline = time.monotonic() + TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise PgBouncerError(
                    f"pgbouncer exited with code {process.returncode}: {self.log_tail()}"
                )
            try:
                connection = self.settings.connect("postgres")
            except psycopg2.OperationalError as error:
                if time.monotonic() > deadline:
                    reason = " ".join(str(error).split())
                    raise PgBouncerError(
                        f"pgbouncer on {self.host}:{self.port} served no connection within "
                        f"{TIMEOUT_SECONDS}s ({reason}); its log: {self.log_tail()}"
                    ) from None
                time.sleep(0.05)
                continue
            connection.close()
            return

    def queries_served(self, database: str) -> int:
        """How many queries PgBouncer has passed to `database` (its `SHOW STATS`)."""
        connection = self.settings.connect("pgbouncer")
        connection.autocommit = True  # the admin console takes no transactions
        try:
            with connection.cursor() as cursor:
                cursor.execute("SHOW STATS")
                assert cursor.description is not None
                names = [column[0] for column in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()
        return next((int(r["total_query_count"]) for r in rows if r["database"] == database), 0)

    def log_tail(self, lines: int = 5) -> str:
        log = self.directory / "pgbouncer.log" if self.directory else None
        if log is None or not log.is_file():
            return "(no log)"
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()  # SIGTERM: PgBouncer's immediate shutdown
            try:
                process.wait(timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=TIMEOUT_SECONDS)
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
