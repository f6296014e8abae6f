"""Every environment variable the project reads or sets, declared once: name, default, parsing,
meaning and who reads it.

Importing this module reads nothing. A `Setting` reads the environment when asked (`read`, `value`),
so each process, and each test, sees the environment as it is at that moment. A value that does not
parse raises `SettingError`, one line naming the variable and never quoting a secret.

The README's configuration table is generated from `SETTINGS`: `python -m report_pipeline.settings`
prints it, `python -m report_pipeline.settings --readme README.md` rewrites it in place, and
report_pipeline_tests/test_settings.py keeps the two equal.

One PostgreSQL server, three descriptions: `PG*` (libpq's variables) is the local server the tools
use (tests, `make dev`, `make bench`, the real Trino's catalogs); `DAGSTER_PG_*` is what
`dagster.yaml` reads for Dagster's run and event storage; `REPORT_PIPELINE_LEDGER_URL` is the saga
ledger's SQLAlchemy URL. In `make dev` and in the compose stack all three name the same server (and
one database holds both Dagster's tables and the ledger's). Where the project sets them itself,
`postgres_environment` derives the last two from the first; compose derives them from `POSTGRES_*`.
"""

from __future__ import annotations

import argparse
import enum
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:  # postgres.py reads its settings from here
    from report_pipeline.postgres import PostgresSettings

T = TypeVar("T")


class SettingError(ValueError):
    """An environment variable the process cannot use: one line that names it."""


class LogFormat(enum.StrEnum):
    JSON = "json"
    CONSOLE = "console"


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable."""

    name: str
    parse: Callable[[str], T]  # raises ValueError with a reason
    default: str | None  # written as in the environment and parsed like a set value; None: none
    meaning: str  # markdown, for the README
    used_by: str  # markdown, for the README
    secret: bool = False  # never logged, printed or quoted in an error
    required: bool = False  # the processes that read it cannot do without it
    default_doc: str | None = None  # the README's default, when it is derived rather than a text

    def read(self) -> T | None:
        """The value now: its default when unset or empty, None if it has none."""
        text = os.environ.get(self.name) or self.default
        return None if text is None else self.parse_text(text)

    def value(self) -> T:
        """The value now, which must exist (a default counts)."""
        value = self.read()
        if value is None:
            raise SettingError(f"{self.name} is not set")
        return value

    def parse_text(self, text: str) -> T:
        """`text` as this variable's value."""
        try:
            return self.parse(text)
        except ValueError as error:
            reason = "not a usable value" if self.secret else str(error)
            raise SettingError(f"{self.name}: {reason}") from None

    @property
    def shown_default(self) -> str:
        if self.required:
            return "required"
        if self.default_doc:
            return self.default_doc
        return f"`{self.default}`" if self.default else "none"

    @property
    def description(self) -> str:
        return f"{self.meaning}; a secret, never logged or printed" if self.secret else self.meaning


# --- parsing: each raises ValueError with the reason ---------------------------------------------


def _text(text: str) -> str:
    return text


def _port(text: str) -> int:
    port = int(text) if text.strip().isdigit() else 0
    if not 0 < port < 65536:
        raise ValueError(f"expected a port number (1-65535), got {text!r}")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:  # also refuses nan
        raise ValueError(f"expected a number of seconds, got {text!r}")
    return seconds


def _positive_seconds(text: str) -> float:
    seconds = _seconds(text)
    if seconds == 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def _path(text: str) -> Path:
    return Path(text).expanduser()


def _names(text: str) -> list[str]:
    """Comma-separated; blanks around and between them are dropped."""
    return [name.strip() for name in text.split(",") if name.strip()]


_SESSION_PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?")


def _session_properties(text: str) -> dict[str, str]:
    """`name=value,...`, with Trino's session property names (lower case, digits, `_`, one `.`)."""
    properties = {}
    for item in _names(text):
        name, separator, value = item.partition("=")
        if not separator or not _SESSION_PROPERTY_NAME.fullmatch(name.strip()):
            raise ValueError(f"expected name=value, got {item!r}")
        properties[name.strip()] = value.strip()
    return properties


def _log_format(text: str) -> LogFormat:
    try:
        return LogFormat(text.strip().lower())
    except ValueError:
        raise ValueError(f"expected {' or '.join(LogFormat)}, got {text!r}") from None


# --- the variables -------------------------------------------------------------------------------

CODE_LOCATION = "code location"
DAGSTER_YAML = "`dagster.yaml`"
LOCAL_TOOLS = "tests, `make dev`/`bench`/`trino`"
PG_SERVER = f"{LOCAL_TOOLS}, `report-pipeline pgbouncer`"
TRINO_SERVER = "`report-pipeline trino-server`, tests"

TRINO_HOST = Setting(
    "TRINO_HOST", _text, None, "the Trino coordinator's host", CODE_LOCATION, required=True
)
TRINO_PORT = Setting("TRINO_PORT", _port, None, "its port", CODE_LOCATION, required=True)
TRINO_USER = Setting(
    "TRINO_USER", _text, None, "the Trino user statements run as", CODE_LOCATION, required=True
)
TRINO_CATALOG = Setting(
    "TRINO_CATALOG",
    _text,
    None,
    "the catalog of the reports' schemas (`analytics`, `scratch`, `reports`)",
    CODE_LOCATION,
    required=True,
)
TRINO_HTTP_SCHEME = Setting("TRINO_HTTP_SCHEME", _text, "http", "`http` or `https`", CODE_LOCATION)
TRINO_VERIFY = Setting(
    "TRINO_VERIFY",
    _text,
    "true",
    "HTTPS certificate check: `true` (the system's CAs, or `REQUESTS_CA_BUNDLE`), `false`, or the "
    "path of a CA bundle (which then wins over `REQUESTS_CA_BUNDLE`)",
    CODE_LOCATION,
)
TRINO_PASSWORD = Setting(
    "TRINO_PASSWORD",
    _text,
    None,
    "password authentication (needs `https`; read when a run connects)",
    CODE_LOCATION,
    secret=True,
)
TRINO_JWT = Setting(
    "TRINO_JWT",
    _text,
    None,
    "JWT (bearer) authentication instead of a password (needs `https`; read when a run connects)",
    CODE_LOCATION,
    secret=True,
)
TRINO_CLIENT_TAGS = Setting(
    "TRINO_CLIENT_TAGS",
    _names,
    "",
    "comma-separated client tags on every statement (for resource-group selectors)",
    CODE_LOCATION,
)
TRINO_SESSION_PROPERTIES = Setting(
    "TRINO_SESSION_PROPERTIES",
    _session_properties,
    "",
    "`name=value,...` set on every statement, e.g. "
    "`query_max_memory=20GB,iceberg.compression_codec=ZSTD`",
    CODE_LOCATION,
)
LEDGER_URL = Setting(
    "REPORT_PIPELINE_LEDGER_URL",
    _text,
    None,
    "SQLAlchemy URL of the saga ledger, e.g. `postgresql+psycopg2://user:pw@host:5432/db` "
    "(`make demo` uses SQLite without one)",
    f"{CODE_LOCATION}, `report-pipeline metrics`/`status`",
    secret=True,
    required=True,
)
DAGSTER_HOME = Setting(
    "DAGSTER_HOME",
    _path,
    None,
    "Dagster's instance folder, with the instance's `dagster.yaml` (`make dev`: `.dagster-home/`)",
    "Dagster",
)
DAGSTER_PG_HOST = Setting(
    "DAGSTER_PG_HOST",
    _text,
    None,
    "Dagster's run and event storage: host",
    DAGSTER_YAML,
    required=True,
)
DAGSTER_PG_PORT = Setting("DAGSTER_PG_PORT", _port, None, "its port", DAGSTER_YAML, required=True)
DAGSTER_PG_USERNAME = Setting(
    "DAGSTER_PG_USERNAME", _text, None, "its user", DAGSTER_YAML, required=True
)
DAGSTER_PG_PASSWORD = Setting(
    "DAGSTER_PG_PASSWORD", _text, None, "its password", DAGSTER_YAML, secret=True, required=True
)
DAGSTER_PG_DB = Setting("DAGSTER_PG_DB", _text, None, "its database", DAGSTER_YAML, required=True)
REPORTS_DIR = Setting(
    "REPORT_PIPELINE_REPORTS_DIR",
    _path,
    None,
    "the report folders to load",
    f"{CODE_LOCATION}, `report-pipeline status`",
    default_doc="the packaged reports",
)
SWEEP_MIN_AGE_SECONDS = Setting(
    "REPORT_PIPELINE_SWEEP_MIN_AGE_SECONDS",
    _seconds,
    "3600",
    "minimum age of a scratch table the sweeper drops",
    CODE_LOCATION,
)
ALERT_WEBHOOK_URL = Setting(
    "REPORT_PIPELINE_ALERT_WEBHOOK_URL",
    _text,
    None,
    "where alerts are posted (read at run time); without one they are logged",
    CODE_LOCATION,
    secret=True,
)
ALERT_FORMAT = Setting(
    "REPORT_PIPELINE_ALERT_FORMAT",
    _text,
    "slack",
    "`slack` (a Slack incoming-webhook message) or `json`",
    CODE_LOCATION,
)
DAGSTER_UI_URL = Setting(
    "DAGSTER_UI_URL",
    _text,
    "http://127.0.0.1:3000",
    "the Dagster UI, for the run links in alerts",
    CODE_LOCATION,
)
GRAFANA_URL = Setting(
    "REPORT_PIPELINE_GRAFANA_URL",
    _text,
    "http://127.0.0.1:3001",
    "Grafana (the compose stack's), for the dashboard and log links in alerts",
    CODE_LOCATION,
)
STUCK_AFTER_SECONDS = Setting(
    "REPORT_PIPELINE_STUCK_AFTER_SECONDS",
    _positive_seconds,
    "900",
    "silence after which a live saga counts as stuck (`--stuck-after` wins)",
    "`report-pipeline metrics`",
)
LOG_FORMAT = Setting(
    "REPORT_PIPELINE_LOG_FORMAT",
    _log_format,
    None,
    "`json` or `console`",
    "every process",
    default_doc="`console` on a terminal, else `json`",
)
PGHOST = Setting("PGHOST", _text, "127.0.0.1", "the local PostgreSQL server's host", PG_SERVER)
PGPORT = Setting("PGPORT", _port, "5432", "its port", PG_SERVER)
PGUSER = Setting(
    "PGUSER", _text, "report_pipeline", "its role, with CREATEDB (`make postgres`)", PG_SERVER
)
PGPASSWORD = Setting(
    "PGPASSWORD",
    _text,
    "report_pipeline",
    "the role's password (the default is a local development server's: set your own elsewhere)",
    PG_SERVER,
    secret=True,
)
CACHE = Setting(
    "REPORT_PIPELINE_CACHE",
    _path,
    None,
    "where the real Trino and its JVM are cached",
    TRINO_SERVER,
    default_doc="`$XDG_CACHE_HOME/report_pipeline`",
)
XDG_CACHE_HOME = Setting(
    "XDG_CACHE_HOME", _path, "~/.cache", "the user's cache folder", TRINO_SERVER
)

# In the README's order.
SETTINGS: tuple[Setting[Any], ...] = (
    TRINO_HOST,
    TRINO_PORT,
    TRINO_USER,
    TRINO_CATALOG,
    TRINO_HTTP_SCHEME,
    TRINO_VERIFY,
    TRINO_PASSWORD,
    TRINO_JWT,
    TRINO_CLIENT_TAGS,
    TRINO_SESSION_PROPERTIES,
    LEDGER_URL,
    DAGSTER_HOME,
    DAGSTER_PG_HOST,
    DAGSTER_PG_PORT,
    DAGSTER_PG_USERNAME,
    DAGSTER_PG_PASSWORD,
    DAGSTER_PG_DB,
    REPORTS_DIR,
    SWEEP_MIN_AGE_SECONDS,
    ALERT_WEBHOOK_URL,
    ALERT_FORMAT,
    DAGSTER_UI_URL,
    GRAFANA_URL,
    STUCK_AFTER_SECONDS,
    LOG_FORMAT,
    PGHOST,
    PGPORT,
    PGUSER,
    PGPASSWORD,
    CACHE,
    XDG_CACHE_HOME,
)
SECRETS = tuple(setting for setting in SETTINGS if setting.secret)


# --- what the project sets for the processes it starts -------------------------------------------


def trino_environment(host: str, port: int, user: str, catalog: str) -> dict[str, str]:
    """TRINO_* for a code location that talks to this coordinator (`make demo`, `make dev`)."""
    return {
        TRINO_HOST.name: host,
        TRINO_PORT.name: str(port),
        TRINO_USER.name: user,
        TRINO_CATALOG.name: catalog,
    }


def postgres_environment(
    server: PostgresSettings, database: str, dagster_server: PostgresSettings | None = None
) -> dict[str, str]:
    """One database of the `PG*` server as `dagster.yaml` (DAGSTER_PG_*) and the saga ledger
    (REPORT_PIPELINE_LEDGER_URL) read it: Dagster's storage and the ledger side by side, Dagster's
    through `dagster_server` when given (a PgBouncer in front of `server`)."""
    dagster = dagster_server or server
    return {
        DAGSTER_PG_HOST.name: dagster.host,
        DAGSTER_PG_PORT.name: str(dagster.port),
        DAGSTER_PG_USERNAME.name: dagster.user,
        DAGSTER_PG_PASSWORD.name: dagster.password,
        DAGSTER_PG_DB.name: database,
        LEDGER_URL.name: server.url(database),
    }


# --- the README's table --------------------------------------------------------------------------

README_BEGIN, README_END = "<!-- settings:begin -->", "<!-- settings:end -->"


def configuration_table(settings: Iterable[Setting[Any]] = SETTINGS) -> str:
    rows = ["| variable | default | used by | meaning |", "| --- | --- | --- | --- |"]
    rows += [
        f"| `{s.name}` | {s.shown_default} | {s.used_by} | {s.description} |" for s in settings
    ]
    return "\n".join(rows)


def with_configuration_table(readme: str) -> str:
    """`readme` with the table between its settings markers generated afresh."""
    if README_BEGIN not in readme or README_END not in readme:
        raise ValueError(f"the README has no {README_BEGIN} ... {README_END} markers")
    before, rest = readme.split(README_BEGIN, 1)
    after = rest.split(README_END, 1)[1]
    return f"{before}{README_BEGIN}\n{configuration_table()}\n{README_END}{after}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m report_pipeline.settings",
        description="Print the README's configuration table, generated from the declarations.",
    )
    parser.add_argument(
        "--readme", type=Path, help="rewrite the table between the settings markers of this file"
    )
    args = parser.parse_args(argv)
    if args.readme is None:
        print(configuration_table())
    else:
        args.readme.write_text(with_configuration_table(args.readme.read_text()))


if __name__ == "__main__":
    main()
