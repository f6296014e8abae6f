"""structlog setup: JSON lines for machines, readable lines on a terminal.

Every saga log line carries its context (saga_id, run_id, report, step, attempt, query_id) as
fields, so one saga's history can be pulled from the logs with a filter on `saga_id`.
Secrets never reach a log: the Trino password and database URLs are not passed to loggers, and
`redact_secrets` masks any key that looks like one as a last line of defence.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_SECRET_WORDS = ("password", "secret", "token", "authorization", "webhook_url", "ledger_url")
_configured = False


def redact_secrets(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    for key in list(event):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event[key] = "***"
    return event


def configure_logging(fmt: str | None = None) -> None:
    """JSON unless REPORT_PIPELINE_LOG_FORMAT=console or stderr is a terminal. Safe to call again."""
    global _configured
    if _configured:
        return
    fmt = (
        fmt
        or os.environ.get("REPORT_PIPELINE_LOG_FORMAT")
        or ("console" if sys.stderr.isatty() else "json")
    )
    renderer = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
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
