"""structlog setup: JSON lines for machines, readable lines on a terminal.

Each process configures it once where it starts: `report-pipeline`'s main (every command, the demo
and dev included) and the code location's module, report_pipeline/definitions.py, which the code
server and every run and step process load first.

Every saga log line carries its context (saga_id, run_id, report, step, attempt, query_id) as
fields, so one saga's history can be pulled from the logs with a filter on `saga_id`.
Secrets never reach a log: the Trino password and database URLs are not passed to loggers, and
`redact_secrets` masks any key that looks like one as a last line of defence.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from report_pipeline.settings import LOG_FORMAT, SECRETS, LogFormat

# Words of secret-looking keys, and each secret setting's own name (a value logged under it).
_SECRET_WORDS = (
    "password",
    "secret",
    "token",
    "authorization",
    "webhook_url",
    "ledger_url",
    *(setting.name.lower() for setting in SECRETS),
)
_configured = False


def redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def configure_logging(fmt: LogFormat | str | None = None) -> None:
    """Structured lines on stderr in `fmt`, else REPORT_PIPELINE_LOG_FORMAT, else `console` on a
    terminal and `json` otherwise. The first call configures; later ones change nothing."""
    global _configured
    if _configured:
        return
    chosen = (
        LogFormat(fmt)
        if fmt
        else LOG_FORMAT.read() or (LogFormat.CONSOLE if sys.stderr.isatty() else LogFormat.JSON)
    )
    renderer = (
        structlog.dev.ConsoleRenderer()
        if chosen is LogFormat.CONSOLE
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    _configured = True
