"""Trino's failures sorted once into what the saga engine acts on: retry, fail, time out, cancel.

Transient: the cluster or a connector was unavailable or short of resources (EXTERNAL,
INSUFFICIENT_RESOURCES, the internal errors of a node or transport failing, HTTP 502/503/504,
lost connections). Everything else, user errors above all, fails the step at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import requests
import trino.exceptions as trino_errors

from report_pipeline.saga import PermanentStepError, StepCancelled, StepError, TransientStepError

TRANSIENT_INTERNAL_ERRORS = {
    "TOO_MANY_REQUESTS_FAILED",
    "PAGE_TRANSPORT_ERROR",
    "PAGE_TRANSPORT_TIMEOUT",
    "NO_NODES_AVAILABLE",
    "REMOTE_TASK_ERROR",
    "SERVER_SHUTTING_DOWN",
    "SERVER_STARTING_UP",
    "REMOTE_HOST_GONE",
    "ABANDONED_TASK",
    "REMOTE_BUFFER_CLOSE_FAILED",
}
CANCELLED_ERRORS = {"USER_CANCELED", "ADMINISTRATIVELY_KILLED"}


def classify_error_code(
    name: str | None, kind: str | None, message: str, query_id: str | None
) -> StepError:
    """The saga's view of a Trino error given by name and type (from a response or a query
    record)."""
    text = f"{name}: {message}"
    if name in CANCELLED_ERRORS:
        return StepCancelled(text, error_name=name, query_id=query_id)
    transient = kind in ("EXTERNAL", "INSUFFICIENT_RESOURCES") or (
        kind == "INTERNAL_ERROR" and name in TRANSIENT_INTERNAL_ERRORS
    )
    cls = TransientStepError if transient else PermanentStepError
    return cls(text, error_name=name, query_id=query_id)


def classify(error: BaseException) -> StepError:
    """The saga's view of a failure raised by the trino client."""
    if isinstance(error, trino_errors.TrinoQueryError):
        return classify_error_code(
            error.error_name, error.error_type, error.message, error.query_id
        )
    if isinstance(
        error, (trino_errors.Http502Error, trino_errors.Http503Error, trino_errors.Http504Error)
    ):
        return TransientStepError(str(error), error_name=type(error).__name__)
    if any(isinstance(e, requests.exceptions.SSLError) for e in _causes(error)):
        # a certificate that does not verify will not verify on a retry: the CA bundle or
        # TRINO_VERIFY needs fixing
        return PermanentStepError(f"TLS failure talking to Trino: {error}", error_name="TLS_ERROR")
    if isinstance(
        error,
        (
            trino_errors.TrinoConnectionError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ),
    ):
        return TransientStepError(
            f"connection to Trino lost: {error}", error_name="CONNECTION_LOST"
        )
    if isinstance(error, trino_errors.HttpError):
        if str(error).startswith(("error 404", "error 410")):
            # the coordinator no longer knows a query it accepted (it restarted, or expired it)
            return TransientStepError(
                f"query lost by the coordinator: {error}", error_name="QUERY_LOST"
            )
        return PermanentStepError(str(error), error_name=type(error).__name__)
    return PermanentStepError(f"{type(error).__name__}: {error}", error_name=type(error).__name__)


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and what it was raised from (the client wraps requests' errors in its own)."""
    current: BaseException | None = error
    seen = 0
    while current is not None and seen < 10:
        yield current
        current, seen = current.__cause__ or current.__context__, seen + 1
