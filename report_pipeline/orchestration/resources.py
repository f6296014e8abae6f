"""The Dagster resources: Trino connection settings and the saga ledger."""

from __future__ import annotations

import weakref
from typing import Literal, cast

import dagster as dg
from pydantic import PrivateAttr

from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.settings import (
    TRINO_CATALOG,
    TRINO_CLIENT_TAGS,
    TRINO_HOST,
    TRINO_HTTP_SCHEME,
    TRINO_JWT,
    TRINO_PASSWORD,
    TRINO_PORT,
    TRINO_SESSION_PROPERTIES,
    TRINO_USER,
    TRINO_VERIFY,
)
from report_pipeline.trino.client import TrinoClient, TrinoSettings

# Client sources (X-Trino-Source) of the project's statements: report steps and their undos, the
# scratch sweeper, the data-arrival sensors.
STEP_SOURCE = "report_pipeline"
SWEEPER_SOURCE = "report_pipeline-sweeper"
ARRIVAL_SOURCE = "report_pipeline-arrival"


class TrinoResource(dg.ConfigurableResource):
    """Where the reports run. Secrets (TRINO_PASSWORD, TRINO_JWT) are read from the environment each
    time a client is made, never from config; the rest is config (`trino_resource_from_env`)."""

    host: str
    port: int = 8080
    user: str = "report_pipeline"
    catalog: str = "lake"
    schema_name: str = "analytics"
    scratch_schema: str = "scratch"
    http_scheme: str = "http"
    verify: str = "true"  # "true", "false", or the path of a CA bundle
    # pydantic copies a field's default for each instance: these lists are never shared
    client_tags: list[str] = []  # noqa: RUF012
    session_properties: dict[str, str] = {}  # noqa: RUF012

    def settings(self, source: str = STEP_SOURCE) -> TrinoSettings:
        """Checked before any statement: a bad combination fails with one clear line."""
        verify: bool | str = {"true": True, "false": False}.get(
            self.verify.strip().lower(), self.verify
        )
        return TrinoSettings(
            host=self.host,
            port=self.port,
            user=self.user,
            catalog=self.catalog,
            schema=self.schema_name,
            # TrinoSettings refuses any other scheme, in one line
            http_scheme=cast(Literal["http", "https"], self.http_scheme.strip().lower()),
            verify=verify,
            password=TRINO_PASSWORD.read(),
            jwt=TRINO_JWT.read(),
            source=source,
            client_tags=tuple(self.client_tags),
            session_properties=dict(self.session_properties),
        )

    def client(self, source: str = STEP_SOURCE) -> TrinoClient:
        """A client whose queries name `source`: Trino's UI shows it, and resource groups can
        select on it."""
        return TrinoClient(self.settings(source))


def trino_resource_from_env() -> TrinoResource:
    """The code location's Trino: TRINO_HOST/PORT/USER/CATALOG are resolved by Dagster when a run
    sets up its resources; the optional settings are read now, when the code location loads."""
    return TrinoResource(
        host=dg.EnvVar(TRINO_HOST.name),
        port=dg.EnvVar.int(TRINO_PORT.name),
        user=dg.EnvVar(TRINO_USER.name),
        catalog=dg.EnvVar(TRINO_CATALOG.name),
        http_scheme=TRINO_HTTP_SCHEME.value(),
        verify=TRINO_VERIFY.value(),
        client_tags=TRINO_CLIENT_TAGS.value(),
        session_properties=TRINO_SESSION_PROPERTIES.value(),
    )


def parse_session_properties(text: str) -> dict[str, str]:
    """A TRINO_SESSION_PROPERTIES value; a malformed one fails with one line naming the variable."""
    return TRINO_SESSION_PROPERTIES.parse_text(text)


# A run's ops write Dagster's events one after another, and dagster-postgres would open a new
# PostgreSQL connection for each (NullPool): ~80 per 3-step run. A process that runs ops keeps one
# connection per storage instead, as the webserver does; its storage statements get a time limit.
STORAGE_STATEMENT_TIMEOUT_MS = 60_000
STORAGE_POOL_RECYCLE_SECONDS = 3600
STORAGE_POOL_MAX_OVERFLOW = 4  # beyond the one held: threads writing at the same moment
_pooled_instances: weakref.WeakSet[dg.DagsterInstance] = weakref.WeakSet()


def keep_storage_connections(instance: dg.DagsterInstance) -> None:
    """Pool the instance's storage connections for the rest of this process (once per instance)."""
    if instance in _pooled_instances:
        return
    instance.optimize_for_webserver(
        statement_timeout=STORAGE_STATEMENT_TIMEOUT_MS,
        pool_recycle=STORAGE_POOL_RECYCLE_SECONDS,
        max_overflow=STORAGE_POOL_MAX_OVERFLOW,
    )
    _pooled_instances.add(instance)


class LedgerResource(dg.ConfigurableResource):
    """The saga ledger: a SQLAlchemy URL (PostgreSQL in production), from
    REPORT_PIPELINE_LEDGER_URL."""

    url: str
    _ledger: SqlLedger | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._ledger = SqlLedger(self.url)
        self._ledger.migrate()
        # every op and hook needs the ledger: its set-up is where a process starts running them
        if context.instance is not None:
            keep_storage_connections(context.instance)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._ledger is not None:
            self._ledger.close()

    @property
    def ledger(self) -> SqlLedger:
        if self._ledger is None:
            raise RuntimeError("the ledger resource was not set up")
        return self._ledger
