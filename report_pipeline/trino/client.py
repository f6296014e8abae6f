"""Running one statement on Trino with the real client: progress while it runs, cancel when stopped.

`TrinoClient.execute` submits a rendered statement with bound parameters, reports the query's
progress (from the stats Trino sends with every poll) to a callback, enforces a time limit both on
the server (`query_max_run_time`) and here (cancelling the query), cancels the query if the
calling thread is interrupted (a Dagster termination arrives as an exception), and turns failures
into the saga engine's error classes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import requests
import structlog
import trino

from report_pipeline.saga import StepError, StepTimedOut, TransientStepError
from report_pipeline.trino.errors import classify, classify_error_code
from report_pipeline.trino.sql import Statement, is_read_only

log = structlog.get_logger("report_pipeline.trino")
# a cancelled query ends within seconds; past this, ask again on a later try
STOP_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class TrinoSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    user: str = "report_pipeline"
    catalog: str = "lake"
    schema: str = "analytics"
    http_scheme: Literal["http", "https"] = "http"
    # HTTPS: check the certificate (True), not (False), or against a CA bundle (its path)
    verify: bool | str = True
    password: str | None = None  # basic authentication (HTTPS only); from the environment
    jwt: str | None = None  # bearer-token authentication (HTTPS only); from the environment
    source: str = "report_pipeline"
    client_tags: tuple[str, ...] = ()  # for resource-group selectors
    session_properties: Mapping[str, str] = field(default_factory=dict)
    request_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.http_scheme not in ("http", "https"):
            raise ValueError(f"http_scheme must be http or https, not {self.http_scheme!r}")
        if self.password and self.jwt:
            raise ValueError("give a password or a JWT for Trino, not both")
        if (self.password or self.jwt) and self.http_scheme != "https":
            # Trino refuses credentials over plain HTTP: every statement would fail
            raise ValueError(
                "Trino password and JWT authentication need HTTPS: set the scheme to https"
            )
        if isinstance(self.verify, str) and not Path(self.verify).is_file():
            raise ValueError(f"the CA bundle for Trino's certificate does not exist: {self.verify}")

    @property
    def ui_url(self) -> str:
        return f"{self.http_scheme}://{self.host}:{self.port}"

    def auth(self) -> trino.auth.Authentication | None:
        if self.jwt:
            return trino.auth.JWTAuthentication(self.jwt)
        if self.password:
            return trino.auth.BasicAuthentication(self.user, self.password)
        return None

    def __repr__(self) -> str:  # never show a secret in a log line or a traceback
        hidden = {"password": "***" if self.password else None, "jwt": "***" if self.jwt else None}
        fields = ", ".join(f"{k}={hidden.get(k, v)!r}" for k, v in vars(self).items())
        return f"TrinoSettings({fields})"


@dataclass(frozen=True)
class QueryProgress:
    query_id: str | None
    state: str
    percent: float | None
    completed_splits: int
    total_splits: int
    processed_rows: int
    processed_bytes: int
    elapsed_seconds: float


@dataclass(frozen=True)
class QueryFate:
    """How a query ended, from the coordinator's record."""

    query_id: str
    state: str  # FINISHED, FAILED, or UNKNOWN (the coordinator forgot it)
    error_name: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class QueryOutcome:
    query_id: str | None
    info_uri: str | None
    update_type: str | None
    row_count: int | None  # rows written (DML/CTAS) or rows returned
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    processed_rows: int = 0
    processed_bytes: int = 0
    elapsed_seconds: float = 0.0
    queued_seconds: float | None = None


class TrinoClient:
    def __init__(self, settings: TrinoSettings):
        self.settings = settings

    @contextmanager
    def connect(
        self, session_properties: dict[str, str] | None = None
    ) -> Iterator[trino.dbapi.Connection]:
        s = self.settings
        with self._http_session() as http_session:
            connection = trino.dbapi.connect(
                host=s.host,
                port=s.port,
                user=s.user,
                catalog=s.catalog,
                schema=s.schema,
                http_scheme=s.http_scheme,
                auth=s.auth(),
                http_session=http_session,
                source=s.source,
                client_tags=list(s.client_tags) or None,
                request_timeout=s.request_timeout_seconds,
                session_properties={**s.session_properties, **(session_properties or {})},
            )
            with connection:
                yield connection

    def execute(
        self,
        statement: Statement,
        *,
        timeout_seconds: float | None = None,
        on_progress: Callable[[QueryProgress], None] | None = None,
        on_query_id: Callable[[str], None] | None = None,
    ) -> QueryOutcome:
        """Run the statement; `on_query_id` is told the query id as soon as Trino assigns it (the
        first answer), before the statement runs on."""
        properties = {"query_max_run_time": f"{int(timeout_seconds)}s"} if timeout_seconds else {}
        started = time.monotonic()
        timed_out = threading.Event()

        def report(stats: dict) -> None:
            # from the moment Trino names the query, every log line of the statement carries its id
            if (
                stats.get("queryId")
                and structlog.contextvars.get_contextvars().get("query_id") != stats["queryId"]
            ):
                structlog.contextvars.bind_contextvars(query_id=stats["queryId"])
                if on_query_id is not None:
                    on_query_id(stats["queryId"])
            if on_progress is not None:
                on_progress(_progress(stats, time.monotonic() - started))

        with (
            self.connect(properties) as connection,
            structlog.contextvars.bound_contextvars(query_id=None),
        ):
            cursor = connection.cursor(stats_callback=report)
            watchdog = _Watchdog(timeout_seconds, cursor, timed_out) if timeout_seconds else None
            try:
                cursor.execute(statement.sql, statement.parameters)
                rows = cursor.fetchall()
            except BaseException as error:
                if isinstance(error, Exception) and not timed_out.is_set():
                    step_error = classify(error)
                    if timeout_seconds and step_error.error_name == "EXCEEDED_TIME_LIMIT":
                        # the server enforced the same limit (query_max_run_time) just before
                        # the watchdog did
                        raise StepTimedOut(
                            f"statement exceeded its time limit of {timeout_seconds:.0f}s",
                            error_name="EXCEEDED_TIME_LIMIT",
                            query_id=cursor.query_id,
                        ) from error
                    if (
                        step_error.error_name in ("CONNECTION_LOST", "QUERY_LOST")
                        and cursor.query_id
                        and not is_read_only(statement.sql)
                    ):
                        # a write whose outcome is unknown: ask Trino what became of it before
                        # anyone retries
                        return self._settle(
                            cursor.query_id, statement, started, timeout_seconds, step_error
                        )
                    raise step_error from error
                _cancel_quietly(cursor)
                if timed_out.is_set():
                    raise StepTimedOut(
                        f"statement exceeded its time limit of {timeout_seconds:.0f}s",
                        error_name="EXCEEDED_TIME_LIMIT",
                        query_id=cursor.query_id,
                    ) from error
                raise  # interrupted (run terminated): the query is cancelled, the interrupt goes on
            finally:
                if watchdog is not None:
                    watchdog.stop()
            if timed_out.is_set():  # cancelled by the watchdog just as the last page arrived
                raise StepTimedOut(
                    f"statement exceeded its time limit of {timeout_seconds:.0f}s",
                    error_name="EXCEEDED_TIME_LIMIT",
                    query_id=cursor.query_id,
                )
            stats = cursor.stats or {}
            if cursor.update_type is None:
                row_count: int | None = len(rows)
            else:  # DML and CTAS report rows written; DDL reports none
                row_count = (
                    cursor.rowcount
                    if cursor.rowcount is not None and cursor.rowcount >= 0
                    else None
                )
            return QueryOutcome(
                query_id=cursor.query_id,
                info_uri=cursor.info_uri,
                update_type=cursor.update_type,
                row_count=row_count,
                columns=[d.name for d in cursor.description or []],
                rows=rows,
                processed_rows=int(stats.get("processedRows") or 0),
                processed_bytes=int(stats.get("processedBytes") or 0),
                elapsed_seconds=time.monotonic() - started,
                queued_seconds=stats["queuedTimeMillis"] / 1000
                if "queuedTimeMillis" in stats
                else None,
            )

    def _settle(
        self,
        query_id: str,
        statement: Statement,
        started: float,
        timeout_seconds: float | None,
        lost: StepError,
    ) -> QueryOutcome:
        """The outcome of a statement whose connection was lost, from the coordinator's record.

        FINISHED: it succeeded. FAILED: its own error. Still running: wait for it (within the step's
        time limit). Unknown (the coordinator restarted or forgot it): it did not complete there,
        and the step's retry first undoes any partial effect before submitting it again.
        """
        deadline = started + (timeout_seconds or 3600)
        log.warning("connection lost mid-statement: looking the query up", query_id=query_id)
        while True:
            info = self.query_info(query_id)
            if info is not None:  # None: the coordinator is unreachable, ask again below
                state = info.get("state")
                if state == "FINISHED":
                    log.info("lost statement had finished", query_id=query_id)
                    return QueryOutcome(
                        query_id=query_id,
                        info_uri=f"{self.settings.ui_url}/ui/query.html?{query_id}",
                        update_type=info.get("updateType"),
                        row_count=None,
                        elapsed_seconds=time.monotonic() - started,
                    )
                if state == "FAILED":
                    error = info.get("errorCode") or {}
                    raise classify_error_code(
                        error.get("name"),
                        error.get("type"),
                        (info.get("failureInfo") or {}).get("message", "failed"),
                        query_id,
                    )
                if state is None:
                    raise lost
            if time.monotonic() > deadline:
                self.cancel(query_id)
                raise StepTimedOut(
                    f"statement {query_id} exceeded its time limit while its outcome was unknown",
                    error_name="EXCEEDED_TIME_LIMIT",
                    query_id=query_id,
                )
            time.sleep(1.0)

    def query_info(self, query_id: str, attempts: int = 5) -> dict | None:
        """`GET /v1/query/{id}`: the record, {} if the coordinator does not know the query, None
        if it is unreachable."""
        url = f"{self.settings.ui_url}/v1/query/{query_id}"
        for attempt in range(attempts):
            try:
                with self._session() as session:
                    response = session.get(url, timeout=self.settings.request_timeout_seconds)
            except requests.RequestException:
                time.sleep(min(2.0**attempt, 8.0))
                continue
            if response.status_code in (404, 410):
                return {}
            if response.ok:
                return response.json()
            time.sleep(min(2.0**attempt, 8.0))
        return None

    def stop(self, query_id: str, timeout_seconds: float = STOP_TIMEOUT_SECONDS) -> QueryFate:
        """Cancel a query by id (whoever submitted it) and wait until Trino reports it ended.

        Raises TransientStepError if Trino cannot be reached or the query does not end in time."""
        deadline = time.monotonic() + timeout_seconds
        self.cancel(query_id)
        while True:
            info = self.query_info(query_id, attempts=1)
            if info == {}:
                return QueryFate(
                    query_id, "UNKNOWN", None, "the coordinator no longer knows the query"
                )
            state = info.get("state") if info is not None else None  # None: unreachable
            if info is not None and state in ("FINISHED", "FAILED"):
                error = info.get("errorCode") or {}
                message = (
                    (info.get("failureInfo") or {}).get("message") if state == "FAILED" else None
                )
                return QueryFate(query_id, state, error.get("name"), message)
            if time.monotonic() > deadline:
                raise TransientStepError(
                    f"query {query_id} was cancelled but is still {state or 'unreachable'} "
                    f"after {timeout_seconds:.0f}s",
                    query_id=query_id,
                )
            if state is not None:
                self.cancel(query_id)  # a cancel can land before the query is registered: ask again
            time.sleep(0.2)

    def cancel(self, query_id: str) -> None:
        try:
            with self._session() as session:
                session.delete(
                    f"{self.settings.ui_url}/v1/query/{query_id}",
                    timeout=self.settings.request_timeout_seconds,
                )
        except requests.RequestException:
            log.warning("could not cancel query", query_id=query_id)

    def _http_session(self) -> requests.Session:
        """The HTTP session of every call to Trino. requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        override a session's `verify` (they are set on many hosts), so an explicit CA bundle or
        verify=False turns the environment off for this session; verify=True keeps it."""
        session = requests.Session()
        session.verify = self.settings.verify
        session.trust_env = self.settings.verify is True
        return session

    def _session(self) -> requests.Session:
        """A session for the REST calls beside the protocol, with the client's user, TLS and
        credentials."""
        session = self._http_session()
        session.headers["X-Trino-User"] = self.settings.user
        auth = self.settings.auth()
        if auth is not None:
            auth.set_http_session(session)
        return session


class _Watchdog:
    """Cancels the query when its time is up (the server-side limit is the second line of
    defence)."""

    def __init__(self, seconds: float, cursor: trino.dbapi.Cursor, fired: threading.Event):
        self._timer = threading.Timer(seconds, self._fire, args=(cursor, fired))
        self._timer.daemon = True
        self._timer.start()

    @staticmethod
    def _fire(cursor: trino.dbapi.Cursor, fired: threading.Event) -> None:
        fired.set()
        _cancel_quietly(cursor)

    def stop(self) -> None:
        self._timer.cancel()


def _cancel_quietly(cursor: trino.dbapi.Cursor) -> None:
    # best effort: the query may have ended, or Trino be unreachable; the caller raises either way
    with contextlib.suppress(Exception):
        cursor.cancel()


def _progress(stats: dict, elapsed: float) -> QueryProgress:
    return QueryProgress(
        query_id=stats.get("queryId"),
        state=stats.get("state", "UNKNOWN"),
        percent=stats.get("progressPercentage"),
        completed_splits=int(stats.get("completedSplits") or 0),
        total_splits=int(stats.get("totalSplits") or 0),
        processed_rows=int(stats.get("processedRows") or 0),
        processed_bytes=int(stats.get("processedBytes") or 0),
        elapsed_seconds=elapsed,
    )
