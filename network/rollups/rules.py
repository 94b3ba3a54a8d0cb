"""Pure rollup rules: hours, which hours a write touches, and how a report period splits. No database.

A rollup row sums one UTC hour (or, in the daily cubes, one UTC day). A report reads whole days and
hours from rollups and the rest (the period's edges, hours still marked) from the raw rows; `split`
and `whole_days` say which part is which.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

HOUR = dt.timedelta(hours=1)
#: How long after its hour a click may still be written from a process's buffer and change a
#: conversion recorded meanwhile (its sub ids and country come from the click row): a click flush
#: marks the conversions of every hour since, up to this far back (a click buffered longer than
#: that means the database took conversions but not clicks for two days).
LATE_CLICK_REACH = dt.timedelta(hours=48)


def hour_of(when: dt.datetime) -> dt.datetime:
    """Return the start of the UTC hour holding `when` (an aware datetime)."""
    return when.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(when: dt.datetime) -> dt.datetime:
    """Return the first hour start at or after `when`."""
    start = hour_of(when)
    return start if start == when else start + HOUR


def hours_of(times: Iterable[dt.datetime]) -> list[dt.datetime]:
    """Return the distinct hours holding `times`, in order."""
    return sorted({hour_of(t) for t in times})


def hours_since(times: Iterable[dt.datetime], now: dt.datetime) -> list[dt.datetime]:
    """Return every hour from each time's own up to now's, for times at most LATE_CLICK_REACH old.

    The conversions of these hours may have been recorded while the clicks were buffered, and so
    without the click row's sub ids and country. An older time gives its own hour only.
    """
    now_hour = hour_of(now)
    reach = now_hour - LATE_CLICK_REACH
    hours: set[dt.datetime] = set()
    for start in {hour_of(t) for t in times}:
        hours.add(start)
        hour = start if start >= reach else now_hour + HOUR
        while hour <= now_hour:
            hours.add(hour)
            hour += HOUR
    return sorted(hours)


def split(
    start: dt.datetime, end: dt.datetime, *, now: dt.datetime
) -> tuple[tuple[dt.datetime, dt.datetime] | None, list[tuple[dt.datetime, dt.datetime]]]:
    """Return the whole hours of [start, end) that rollups may answer (None: none), and the edges read raw.

    Rolled hours end at the current hour's start: the open hour is always read raw (the job never
    rolls it up, and its marks would only be read to learn that).
    """
    lo = ceil_hour(start)
    hi = min(hour_of(end), hour_of(now))
    if hi <= lo:
        return None, [(start, end)]
    edges = [(a, b) for a, b in ((start, lo), (hi, end)) if a < b]
    return (lo, hi), edges


def whole_days(lo: dt.datetime, hi: dt.datetime) -> tuple[dt.date, dt.date] | None:
    """Return the UTC days [first, end) wholly inside the hours [lo, hi) (None: not one), which daily
    rollups may answer."""
    lo, hi = lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)
    first = lo.date() if lo.time() == dt.time() else lo.date() + dt.timedelta(days=1)
    end = hi.date()
    return (first, end) if first < end else None
