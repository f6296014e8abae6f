"""Posting an alert to a webhook; the caller retries with backoff and records every attempt.

One attempt is bounded whatever the receiver does: no redirect is followed (a 3xx fails it), the
whole exchange has a deadline, and at most a small prefix of the answer is read. The URL is a
secret, so no error message names it (nor a redirect's location, which may be the URL again).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import cast

import requests
import urllib3
from requests.adapters import HTTPAdapter

from report_pipeline.alerting.alerts import Alert
from report_pipeline.alerting.payloads import FORMATS

# Connect, send and read the whole answer within this. The alert sensor posts its alerts one after
# another in its tick, so one slow receiver must not hold the tick; requests' own timeout bounds
# each socket read, not the exchange, so a receiver sending a byte every few seconds would never
# time out.
DELIVERY_DEADLINE_SECONDS = 10.0
# The status code decides success; a webhook's answer body is an "ok" at most. Reading no more than
# this keeps a receiver that answers with hundreds of megabytes out of the sensor's memory.
MAX_ANSWER_BYTES = 64 * 1024


class DeliveryError(Exception):
    """The webhook did not accept the alert (connection failure, deadline, redirect, non-2xx)."""


def post_alert(
    url: str, alert: Alert, fmt: str = "slack", deadline_seconds: float = DELIVERY_DEADLINE_SECONDS
) -> None:
    """Post once; DeliveryError (one line, no URL in it) unless the webhook answered 2xx in time."""
    adapter = _DeadlineAdapter(deadline_seconds)
    status = None
    with requests.Session() as session:
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        try:
            with adapter:
                status = _exchange(session, url, FORMATS[fmt](alert), deadline_seconds)
        except (OSError, urllib3.exceptions.HTTPError) as error:  # requests' errors are OSErrors
            # the exception text can contain the URL, which is a secret: name only the failure
            if not (
                adapter.expired
                or isinstance(error, (requests.Timeout, urllib3.exceptions.TimeoutError))
            ):
                raise DeliveryError(f"webhook unreachable ({type(error).__name__})") from None
    # expired without an error: the cut answer merely looked complete (no Content-Length)
    if status is None or adapter.expired:
        raise DeliveryError(f"webhook did not answer within {deadline_seconds:g} s")
    if 300 <= status < 400:
        raise DeliveryError(f"webhook redirected (HTTP {status}); redirects are not followed")
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook answered HTTP {status}")


def _exchange(session: requests.Session, url: str, payload: dict, deadline_seconds: float) -> int:
    # a 307/308 would re-send the alert to wherever it points, a 301/302 make a GET there count as
    # delivered: the webhook's own URL is the only place an alert goes
    with session.post(
        url,
        json=payload,
        allow_redirects=False,
        stream=True,
        timeout=(deadline_seconds, deadline_seconds),
    ) as response:
        if 200 <= response.status_code < 300:
            # the answer must arrive in time, but its content does not matter: raw bytes, never
            # decompressed (a small gzip can inflate to gigabytes); closing drops the rest unread
            response.raw.read(MAX_ANSWER_BYTES, decode_content=False)
        return response.status_code


class _DeadlineAdapter(HTTPAdapter):
    """Cuts the attempt's connections when its deadline passes, whatever phase the exchange is in.

    Streaming alone cannot bound the exchange: the status line and headers are read before requests
    returns, and a TLS handshake before that. Shutting the socket down wakes whatever read is
    blocked.
    As a context manager it runs the deadline's timer; one adapter serves one attempt.
    """

    def __init__(self, deadline_seconds: float) -> None:
        super().__init__(max_retries=0)
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> _DeadlineAdapter:
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()

    def get_connection_with_tls_context(self, *args, **kwargs):
        # requests' pools for http:// and https:// are urllib3's HTTP(S)ConnectionPool
        pool = cast(
            urllib3.HTTPConnectionPool, super().get_connection_with_tls_context(*args, **kwargs)
        )
        pool.ConnectionCls = _watched(pool.ConnectionCls, self._watch)
        return pool

    def _watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:  # connected just as the deadline passed
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _watched(connection_class: type, watch: Callable[[socket.socket], None]) -> type:
    class Watched(connection_class):
        def _new_conn(self) -> socket.socket:
            # the plain TCP socket, before any TLS: shutting it down also ends a stalled handshake
            sock = super()._new_conn()
            watch(sock)
            return sock

    return Watched


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to cut
        sock.shutdown(socket.SHUT_RDWR)
