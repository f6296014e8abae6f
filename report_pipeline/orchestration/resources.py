"""The Dagster resources: Trino connection settings and the saga ledger."""

from __future__ import annotations

import os
import re

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
    """Where the reports run. Secrets (password, JWT) are read from the environment at run time,
    never from config; the rest is config (definitions.py fills it from TRINO_* variables)."""

    host: str
    port: int = 8080
    user: str = "report_pipeline"
    catalog: str = "lake"
    schema_name: str = "analytics"
    scratch_schema: str = "scratch"
    http_scheme: str = "http"
    verify: str = "true"  # "true", "false", or the path of a CA bundle
    client_tags: list[str] = []
    session_properties: dict[str, str] = {}
    password_env_var: str = "TRINO_PASSWORD"
    jwt_env_var: str = "TRINO_JWT"

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
            http_scheme=self.http_scheme.strip().lower(),
            verify=verify,
            password=os.environ.get(self.password_env_var) or None,
            jwt=os.environ.get(self.jwt_env_var) or None,
            source=source,
            client_tags=tuple(self.client_tags),
            session_properties=dict(self.session_properties),
        )

    def client(self, source: str = STEP_SOURCE) -> TrinoClient:
        """A client whose queries name `source`: Trino's UI shows it, and resource groups can select on it."""
        return TrinoClient(self.settings(source))


def trino_resource_from_env() -> TrinoResource:
    """The code location's Trino settings: TRINO_HOST/PORT/USER/CATALOG are required (resolved at run
    time), the rest optional; see the README's configuration table."""
    env = os.environ
    return TrinoResource(
        host=dg.EnvVar("TRINO_HOST"),
        port=dg.EnvVar.int("TRINO_PORT"),
        user=dg.EnvVar("TRINO_USER"),
        catalog=dg.EnvVar("TRINO_CATALOG"),
        http_scheme=env.get("TRINO_HTTP_SCHEME", "http"),
        verify=env.get("TRINO_VERIFY", "true"),
        client_tags=[t.strip() for t in env.get("TRINO_CLIENT_TAGS", "").split(",") if t.strip()],
        session_properties=parse_session_properties(env.get("TRINO_SESSION_PROPERTIES", "")),
    )


def parse_session_properties(text: str) -> dict[str, str]:
    """`name=value,name=value` (Trino's session property names: lower case, digits, `_`, one `.`)."""
    properties = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, separator, value = item.partition("=")
        name = name.strip()
        if not separator or not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?", name):
            raise ValueError(f"TRINO_SESSION_PROPERTIES: expected name=value, got {item!r}")
        properties[name] = value.strip()
    return properties


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
