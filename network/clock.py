"""The only reader of the wall clock, so tests can freeze time."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC

_frozen: dt.datetime | None = None


def now_utc() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    if _frozen is not None:
        return _frozen
    return dt.datetime.now(UTC)


def freeze(at: dt.datetime | None) -> None:
    """Pin now_utc() to `at` (None unfreezes); tests only."""
    global _frozen
    if at is not None and at.tzinfo is None:
        raise ValueError("frozen time must be timezone-aware")
    _frozen = at.astimezone(UTC) if at is not None else None


def as_utc(value: dt.datetime) -> dt.datetime:
    """Return `value` as aware UTC; naive values are taken to be UTC (SQLite returns them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def day_start(value: dt.datetime) -> dt.datetime:
    """Return the UTC midnight that opens the day of `value`."""
    v = as_utc(value)
    return v.replace(hour=0, minute=0, second=0, microsecond=0)


def period_start(value: dt.datetime, period: str) -> dt.datetime:
    """Return the start of the UTC day, ISO week (Monday), month or lifetime holding `value`."""
    d = day_start(value)
    if period == "day":
        return d
    if period == "week":
        return d - dt.timedelta(days=d.weekday())
    if period == "month":
        return d.replace(day=1)
    if period == "lifetime":
        return dt.datetime(1970, 1, 1, tzinfo=UTC)
    raise ValueError(f"unknown period {period!r}")
