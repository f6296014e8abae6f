"""The Dagster resources: Trino connection settings and the saga ledger."""

from __future__ import annotations

import os

import dagster as dg
from pydantic import PrivateAttr

from report_pipeline.observability.logging import configure_logging
from report_pipeline.saga.ledger import SqlLedger
from report_pipeline.trino.client import TrinoClient, TrinoSettings


# Client sources (X-Trino-Source) of the project's statements: report steps and their undos, the
# scratch sweeper, the data-arrival sensors.
STEP_SOURCE = "report_pipeline"
SWEEPER_SOURCE = "report_pipeline-sweeper"
ARRIVAL_SOURCE = "report_pipeline-arrival"


class TrinoResource(dg.ConfigurableResource):
    """Where the reports run. Secrets are read from the environment at run time, never from config."""

    host: str
    port: int = 8080
    user: str = "report_pipeline"
    catalog: str = "lake"
    schema_name: str = "analytics"
    scratch_schema: str = "scratch"
    http_scheme: str = "http"
    password_env_var: str = "TRINO_PASSWORD"

    def client(self, source: str = STEP_SOURCE) -> TrinoClient:
        """A client whose queries name `source`: Trino's UI shows it, and resource groups can select on it."""
        return TrinoClient(TrinoSettings(
            host=self.host, port=self.port, user=self.user, catalog=self.catalog, schema=self.schema_name,
            http_scheme=self.http_scheme, password=os.environ.get(self.password_env_var) or None, source=source))


class LedgerResource(dg.ConfigurableResource):
    """The saga ledger: a SQLAlchemy URL (PostgreSQL in production), from an environment variable."""

    url: str
    _ledger: SqlLedger | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        configure_logging()
        self._ledger = SqlLedger(self.url)
        self._ledger.migrate()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._ledger is not None:
            self._ledger.close()

    @property
    def ledger(self) -> SqlLedger:
        if self._ledger is None:
            raise RuntimeError("the ledger resource was not set up")
        return self._ledger
