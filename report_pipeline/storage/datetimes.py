"""Moments as the stores write and read them: always timezone-aware, in UTC."""

from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """`moment` with its timezone: SQLite hands back the UTC moments it stored without one."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
