"""The PostgreSQL server the project's local tools use: `make dev`, `make test`, `make bench` and
the real Trino's catalogs. From PGHOST/PGPORT/PGUSER/PGPASSWORD (report_pipeline/settings.py, whose
defaults match `.ci/ensure-postgres`, which installs, starts and sets up a local server with
them)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql

from report_pipeline.settings import PGHOST, PGPASSWORD, PGPORT, PGUSER

CONNECT_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class PostgresSettings:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a secret: kept out of reprs, logs and tracebacks

    @classmethod
    def from_env(cls) -> PostgresSettings:
        return cls(
            host=PGHOST.value(),
            port=PGPORT.value(),
            user=PGUSER.value(),
            password=PGPASSWORD.value(),
        )

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg2) for one database of this server."""
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql+psycopg2://{auth}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg2.extensions.connection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        )


def ensure_database(settings: PostgresSettings, name: str) -> None:
    connection = settings.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        connection.close()


def drop_database(settings: PostgresSettings, name: str) -> None:
    connection = settings.connect()
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    finally:
        connection.close()
