"""A real single-node Trino coordinator on this machine, sized for 2 cores, with the project's
catalogs.

`TrinoServer` writes a config into its data folder, runs the JVM in its own process group, waits
until `SELECT 1` answers, and loads the sample warehouse: `lake` (PostgreSQL connector, the same
catalog file as the compose stack) gets the local engine's rows copied straight into its database,
`iceberg` gets them through Trino. `memory` is there too. Optional HTTPS with password (file
authenticator) and JWT authentication sits beside plain HTTP, for the client's production settings.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import requests
import trino
from psycopg2 import sql

from report_pipeline.local_trino.sample_data import (
    DEFAULT_EVENTS,
    SOURCE_SCHEMA,
    WAREHOUSE_SCHEMAS,
    load_sample_data,
)
from report_pipeline.postgres import PostgresSettings, ensure_database
from report_pipeline.trino.sql import QualifiedName
from report_pipeline.trino_server.install import TrinoInstallation

DEPLOY_TRINO = Path(__file__).resolve().parent.parent / "deploy" / "trino"
CATALOG_FILES = ("lake.properties", "iceberg.properties", "memory.properties")
START_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 30
# a one-row table in the lake database, scanned at start-up
READINESS_PROBE = "trino_readiness_probe"
# A 2 GB heap leaves room for DuckDB, PostgreSQL and Dagster beside it (about 3 GB resident).
JVM_OPTIONS = (
    "-server",
    "-Xmx2G",
    "-XX:+UseG1GC",
    "-XX:G1HeapRegionSize=32M",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:+ExitOnOutOfMemoryError",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:ReservedCodeCacheSize=256M",
    "-Djdk.attach.allowAttachSelf=true",
    "-XX:+EnableDynamicAgentLoading",
    "-Dfile.encoding=UTF-8",
)
# DuckDB column types of the sample tables -> PostgreSQL's (which the connector shows as Trino's).
PG_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "VARCHAR": "varchar",
    "DATE": "date",
    "TIMESTAMP": "timestamp(6)",
    "DOUBLE": "double precision",
}


class TrinoServerError(RuntimeError):
    """The server did not start or answer; the message carries the end of its log."""


@dataclass(frozen=True)
class SecureAccess:
    """HTTPS beside HTTP: a PEM file holding the server's key and certificate, users in a password
    file (bcrypt or PBKDF2 lines, Trino's file authenticator), optionally JWTs signed by a key."""

    https_port: int
    keystore_pem: Path
    password_file: Path
    jwt_public_key: Path | None = None


class TrinoServer:
    def __init__(
        self,
        installation: TrinoInstallation,
        data_dir: Path,
        postgres: PostgresSettings,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        lake_database: str = "report_pipeline_lake",
        iceberg_database: str = "report_pipeline_iceberg",
        sample_events: int = DEFAULT_EVENTS,
        secure: SecureAccess | None = None,
        log=print,
    ):
        self.installation = installation
        self.data_dir = data_dir.resolve()
        self.postgres = postgres
        self.host, self.port = host, port
        self.lake_database, self.iceberg_database = lake_database, iceberg_database
        self.sample_events = sample_events
        self.secure = secure
        self._log = log
        self._process: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def start(self) -> TrinoServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_databases()
        self._write_config()
        started = time.monotonic()
        env = {**os.environ, "JAVA_HOME": str(self.installation.java_home), **self._catalog_env()}
        command = [
            str(self.installation.java),
            "-cp",
            str(self.installation.server_home / "lib" / "*"),
            *JVM_OPTIONS,
            *self._node_properties(),
            f"-Dconfig={self.data_dir / 'etc' / 'config.properties'}",
            "io.trino.server.TrinoServer",
        ]
        with open(self.data_dir / "jvm.log", "ab") as log:
            # its own process group: a Ctrl-C in the terminal reaches us, and we stop it in order
            self._process = subprocess.Popen(
                command,
                cwd=self.installation.server_home,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._await_ready()
            self.startup_seconds = time.monotonic() - started
            self._load_iceberg_sample_data()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGTERM (Trino shuts down its queries and catalogs), then SIGKILL if it does not end."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def wait_for_exit(self, timeout: float | None = None) -> int | None:
        """The JVM's exit code once it has ended (None if still running after `timeout` seconds)."""
        if self._process is None:
            return 0
        try:
            return self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def __enter__(self) -> TrinoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def connect(self, **options) -> trino.dbapi.Connection:
        options = {
            "user": "report_pipeline",
            "catalog": "lake",
            "schema": SOURCE_SCHEMA,
            "request_timeout": 30,
            **options,
        }
        return trino.dbapi.connect(host=self.host, port=self.port, **options)

    def execute(self, statement: str, parameters: list | None = None, **options) -> list[list]:
        with self.connect(**options) as connection:
            cursor = connection.cursor()
            cursor.execute(statement, parameters)
            return cursor.fetchall()

    # -- set-up -------------------------------------------------------------------------------

    def _prepare_databases(self) -> None:
        for name in (self.lake_database, self.iceberg_database):
            ensure_database(self.postgres, name)
        with (
            self.postgres.connect(self.iceberg_database) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute((DEPLOY_TRINO / "iceberg_catalog.sql").read_text())
        with self.postgres.connect(self.lake_database) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS public.{READINESS_PROBE} AS SELECT 1 AS ready"
            )
        load_lake_sample_data(self.postgres, self.lake_database, self.sample_events)
        (self.data_dir / "iceberg").mkdir(exist_ok=True)

    def _catalog_env(self) -> dict[str, str]:
        pg = self.postgres
        base = f"jdbc:postgresql://{pg.host}:{pg.port}/"
        return {
            "LAKE_JDBC_URL": base + self.lake_database,
            "ICEBERG_CATALOG_JDBC_URL": base + self.iceberg_database,
            "LAKE_USER": pg.user,
            "LAKE_PASSWORD": pg.password,
            "ICEBERG_WAREHOUSE_DIR": str(self.data_dir / "iceberg"),
        }

    def _node_properties(self) -> list[str]:
        """Read before the config file, so passed as system properties (as Trino's launcher
        does)."""
        node = {
            "node.environment": "report_pipeline",
            "node.id": f"local-{self.port}",
            "node.data-dir": str(self.data_dir / "node"),
            "node.bind-ip": self.host,
            "node.internal-address": "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host,
        }
        return [f"-D{k}={v}" for k, v in node.items()]

    def _write_config(self) -> None:
        etc = self.data_dir / "etc"
        shutil.rmtree(etc, ignore_errors=True)
        (etc / "catalog").mkdir(parents=True)
        for name in CATALOG_FILES:
            shutil.copy(DEPLOY_TRINO / "catalog" / name, etc / "catalog" / name)
        properties = {
            "coordinator": "true",
            "node-scheduler.include-coordinator": "true",
            "http-server.http.port": str(self.port),
            "discovery.uri": f"http://127.0.0.1:{self.port}",
            "log.path": str(self.log_file),
            "plugin.dir": str(self.installation.server_home / "plugin"),
            "catalog.config-dir": str(etc / "catalog"),
            "query.max-memory": "1GB",
            "query.max-memory-per-node": "1GB",
            # two cores: a few task threads keep the coordinator answering polls under load
            "task.concurrency": "2",
            "task.max-worker-threads": "8",
        }
        if self.secure is not None:
            s = self.secure
            authentication = "PASSWORD,JWT" if s.jwt_public_key else "PASSWORD"
            properties.update(
                {
                    "http-server.https.enabled": "true",
                    "http-server.https.port": str(s.https_port),
                    "http-server.https.keystore.path": str(s.keystore_pem),
                    "http-server.authentication.type": authentication,
                    # plain HTTP stays open (the tests' other clients), as on a dev coordinator
                    "http-server.authentication.allow-insecure-over-http": "true",
                    "internal-communication.shared-secret": secrets.token_urlsafe(32),
                    "password-authenticator.config-files": str(
                        etc / "password-authenticator.properties"
                    ),
                }
            )
            if s.jwt_public_key:
                properties["http-server.authentication.jwt.key-file"] = str(s.jwt_public_key)
            (etc / "password-authenticator.properties").write_text(
                f"password-authenticator.name=file\nfile.password-file={s.password_file}\n"
            )
        (etc / "config.properties").write_text("".join(f"{k}={v}\n" for k, v in properties.items()))

    def _await_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._process is None or self._process.poll() is not None:
                raise TrinoServerError(
                    f"Trino exited during start-up; its log ends:\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise TrinoServerError(
                    f"Trino did not answer SELECT 1 within {START_TIMEOUT_SECONDS}s; "
                    f"its log ends:\n{self._log_tail()}"
                )
            if self._answers():
                return
            time.sleep(0.5)

    def _answers(self) -> bool:
        try:
            info = requests.get(f"{self.url}/v1/info", timeout=2).json()
            if info.get("starting", True):
                return False
            if self.execute("SELECT 1", request_timeout=10) != [[1]]:
                return False
            # A table scan needs the node announced for the catalog, a second or two after SELECT 1
            # and system.runtime.nodes answer: until then it fails NO_NODES_AVAILABLE.
            return self.execute(
                f"SELECT count(*) FROM lake.public.{READINESS_PROBE}", request_timeout=10
            ) == [[1]]
        except (
            requests.RequestException,
            ValueError,
            trino.exceptions.TrinoQueryError,
            trino.exceptions.HttpError,
        ):
            return False

    def _load_iceberg_sample_data(self) -> None:
        """The lake's sample tables copied into Iceberg (names validated and quoted as a report's
        are)."""
        for schema in WAREHOUSE_SCHEMAS:
            catalog, schema_name, _ = QualifiedName("iceberg", schema, "unused").quoted().split(".")
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {catalog}.{schema_name}")
        for table in ("users", "events"):
            target, source = (
                QualifiedName("iceberg", SOURCE_SCHEMA, table),
                QualifiedName("lake", SOURCE_SCHEMA, table),
            )
            self.execute(
                f"CREATE TABLE IF NOT EXISTS {target.quoted()} AS SELECT * FROM {source.quoted()}"
            )

    def _log_tail(self, lines: int = 30) -> str:
        tails = []
        for path in (self.data_dir / "jvm.log", self.log_file):
            if path.is_file():
                tails.append(
                    f"--- {path}\n"
                    + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                )
        return "\n".join(tails) or "(no log)"


def load_lake_sample_data(
    postgres: PostgresSettings, database: str, events: int = DEFAULT_EVENTS
) -> bool:
    """The local engine's sample warehouse, row for row, in a PostgreSQL database; True if loaded.

    The rows come from the same generator (DuckDB) and are copied in with COPY: identical data on
    both backends, so one expected result serves both."""
    source = duckdb.connect()
    source.execute("ATTACH ':memory:' AS sample")
    load_sample_data(source, "sample", events)
    with postgres.connect(database) as connection, connection.cursor() as cursor:
        for schema in WAREHOUSE_SCHEMAS:
            cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name IN ('users', 'events')",
            [SOURCE_SCHEMA],
        )
        row = cursor.fetchone()
        assert row is not None  # count(*) answers exactly one row
        if row[0] == 2 or events == 0:
            return False
        for table in ("users", "events"):
            columns = source.execute(f"DESCRIBE sample.{SOURCE_SCHEMA}.{table}").fetchall()
            target = sql.Identifier(SOURCE_SCHEMA, table)
            cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            cursor.execute(
                sql.SQL("CREATE TABLE {} ({})").format(
                    target,
                    sql.SQL(", ").join(
                        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(PG_TYPES[kind]))
                        for name, kind, *_ in columns
                    ),
                )
            )
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / f"{table}.csv"
                source.execute(
                    f"COPY sample.{SOURCE_SCHEMA}.{table} TO '{path}' (FORMAT csv, HEADER false)"
                )
                with open(path) as rows:
                    cursor.copy_expert(
                        sql.SQL("COPY {} FROM STDIN (FORMAT csv)").format(target), rows
                    )
    return True
