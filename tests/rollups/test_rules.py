"""Pure rollup rules: hours, the hours a late click touches, and how a period splits."""

from __future__ import annotations

import datetime as dt

import pytest

from network.rollups import rules

UTC = dt.UTC


def t(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "now", "hours", "edges"),
    [
        # Whole hours up to the open one; the open hour is an edge.
        (t(2, 0), t(3, 0), t(4, 0), (t(2, 0), t(3, 0)), []),
        (t(2, 0), t(3, 12, 30), t(3, 12, 30), (t(2, 0), t(3, 12)), [(t(3, 12), t(3, 12, 30))]),
        (t(2, 0, 15), t(2, 5, 45), t(9, 0), (t(2, 1), t(2, 5)), [(t(2, 0, 15), t(2, 1)), (t(2, 5), t(2, 5, 45))]),
        # Into the future: hours after now's are read raw (there is nothing there yet).
        (t(2, 0), t(5, 0), t(3, 7, 5), (t(2, 0), t(3, 7)), [(t(3, 7), t(5, 0))]),
        # Inside one hour, or no whole hour at all.
        (t(2, 3, 10), t(2, 3, 50), t(9, 0), None, [(t(2, 3, 10), t(2, 3, 50))]),
        (t(2, 3, 10), t(2, 4, 50), t(9, 0), None, [(t(2, 3, 10), t(2, 4, 50))]),
    ],
)
def test_a_period_splits_into_rolled_up_hours_and_raw_edges(start, end, now, hours, edges):
    assert rules.split(start, end, now=now) == (hours, edges)


def test_a_click_marks_the_conversions_of_every_hour_since_within_reach():
    now = t(3, 2, 10)
    assert rules.hours_since([t(3, 0, 59)], now) == [t(3, 0), t(3, 1), t(3, 2)]
    assert rules.hours_since([t(3, 2, 1)], now) == [t(3, 2)]
    # Older than LATE_CLICK_REACH: its own hour only.
    assert rules.hours_since([t(1, 0, 5)], now) == [t(1, 0)]


def test_hours_are_utc_hour_starts():
    plus_two = dt.timezone(dt.timedelta(hours=2))
    assert rules.hour_of(dt.datetime(2026, 3, 2, 14, 59, 59, 999999, tzinfo=plus_two)) == t(2, 12)
    assert rules.ceil_hour(t(2, 12)) == t(2, 12)
    assert rules.ceil_hour(t(2, 12, 1)) == t(2, 13)
    assert rules.hours_of([t(2, 12, 5), t(2, 12, 50), t(2, 11, 0)]) == [t(2, 11), t(2, 12)]


@pytest.mark.parametrize(
    ("lo", "hi", "days"),
    [
        (
            dt.datetime(2026, 3, 1, tzinfo=UTC),
            dt.datetime(2026, 3, 3, tzinfo=UTC),
            (dt.date(2026, 3, 1), dt.date(2026, 3, 3)),
        ),
        (
            dt.datetime(2026, 3, 1, 1, tzinfo=UTC),
            dt.datetime(2026, 3, 3, 5, tzinfo=UTC),
            (dt.date(2026, 3, 2), dt.date(2026, 3, 3)),
        ),
        (dt.datetime(2026, 3, 1, 1, tzinfo=UTC), dt.datetime(2026, 3, 2, 23, tzinfo=UTC), None),
        (dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 1, 23, tzinfo=UTC), None),
        # Hours are UTC hours, whatever the offset they are given in.
        (
            dt.datetime(2026, 3, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            dt.datetime(2026, 3, 2, tzinfo=UTC),
            (dt.date(2026, 3, 1), dt.date(2026, 3, 2)),
        ),
    ],
)
def test_whole_utc_days_of_the_rolled_hours_are_read_from_the_daily_cubes(lo, hi, days):
    assert rules.whole_days(lo, hi) == days
