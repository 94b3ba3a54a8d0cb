"""RELIABILITY.md's rollup invariant: rollups equal the raw rows they summarise, for every closed hour and day.

`check_rollups` closes every marked hour as the job does (`roll_hour`), then sums the raw rows in
Python, independently of the job's SQL, and compares hour by hour.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.conversions.models import Conversion
from network.offers.models import Offer
from network.reports import rollup
from network.rollups.models import (
    CLICKS,
    CONVERSIONS,
    CUBES,
    EVERY_COLUMN,
    RollupDay,
    RollupDayMark,
    RollupDetail,
    RollupHour,
    RollupMark,
)
from network.rollups.rules import hour_of
from network.tracking.models import Click, Link

SUBS = ("sub1", "sub2", "sub3", "sub4", "sub5")
SUMS = (
    "clicks", "unique_clicks", "pending", "approved", "rejected", "reversed", "sale_minor", "revenue_minor",
    "payout_minor",
)  # fmt: skip
_STATUS = {"pending": 2, "approved": 3, "rejected": 4, "reversed": 5}
_COUNTED = ("pending", "approved")

Key = tuple[Any, ...]


def close_hours(session: Session) -> int:
    """Roll up every marked hour, then every marked day, as the job does once each has ended; return
    how many hours."""
    hours = rollup.marked_hours(session, before=dt.datetime.max.replace(tzinfo=dt.UTC))
    for hour in hours:
        rollup.roll_hour(session, hour)
    for day in rollup.marked_days(session):
        rollup.roll_day(session, day)
    return len(hours)


def _add(table: dict[Key, list[int]], key: Key, sums: list[int]) -> None:
    row = table.setdefault(key, [0] * len(SUMS))
    for i, value in enumerate(sums):
        row[i] += value


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def raw_details(session: Session) -> dict[Key, list[int]]:
    """Return the rollup details the raw rows make: (hour, source, offer, partner, brand, currency, subs,
    country, device) -> sums."""
    offers = {offer.id: offer for offer in session.scalars(select(Offer))}
    links = {link.id: link for link in session.scalars(select(Link))}
    clicks = {click.id: click for click in session.scalars(select(Click))}
    details: dict[Key, list[int]] = {}
    for click in clicks.values():
        offer = offers[click.offer_id]
        key = (hour_of(click.created_at), CLICKS, click.offer_id, click.partner_id, offer.brand_id, offer.currency,
               *(getattr(click, s) for s in SUBS), click.country, click.device)  # fmt: skip
        _add(details, key, [1, int(click.is_unique), 0, 0, 0, 0, 0, 0, 0])
    for c in session.scalars(select(Conversion)):
        click, link = clicks.get(c.click_id), links[c.link_id]
        subs = [_first(getattr(click, s, None), getattr(link, s)) for s in SUBS]
        key = (hour_of(c.created_at), CONVERSIONS, c.offer_id, c.partner_id, c.brand_id, c.currency, *subs,
               click.country if click else None, click.device if click else None)  # fmt: skip
        sums = [0] * len(SUMS)
        sums[_STATUS[c.status]] = 1
        if c.status in _COUNTED:
            sums[6:] = [c.amount_minor or 0, c.revenue_minor, c.payout_minor]
        _add(details, key, sums)
    return details


def _stored(session: Session, table: Any, keys: tuple[str, ...]) -> dict[Key, list[int]]:
    stored: dict[Key, list[int]] = {}
    for row in session.scalars(select(table)):
        key = tuple(getattr(row, k) for k in keys)
        assert key not in stored, f"two rollup rows for {key}"
        stored[key] = [getattr(row, name) for name in SUMS]
    return stored


def check_rollups(session: Session) -> None:
    """Close every marked hour and day, then assert the rollups equal the raw rows, detail by detail, hour by
    hour and, in each daily cube, day by day."""
    session.flush()
    close_hours(session)
    session.expire_all()
    assert session.scalars(select(RollupMark.id).limit(1)).first() is None, "a mark was left"
    expected = raw_details(session)
    detail_keys = ("hour", "source", "offer_id", "partner_id", "brand_id", "currency", *SUBS, "country", "device")
    assert _stored(session, RollupDetail, detail_keys) == expected
    columns = (
        "offer_id",
        "partner_id",
        "brand_id",
        "currency",
        "sub1",
        "sub2",
        "sub3",
        "sub4",
        "sub5",
        "country",
        "device",
    )
    hours: dict[Key, list[int]] = {}
    days: dict[Key, list[int]] = {}
    for key, sums in expected.items():
        values = dict(zip(columns, key[2:], strict=True))
        for cube, names in CUBES.items():
            cells = tuple(values[c] if c in names else None for c in columns)
            _add(days, (cube, key[0].date(), *cells), sums)
            if cube != EVERY_COLUMN:
                _add(hours, (cube, key[0], *cells[:4], cells[4], cells[9]), sums)
    hour_keys = ("cube", "hour", "offer_id", "partner_id", "brand_id", "currency", "sub1", "country")
    assert _stored(session, RollupHour, hour_keys) == hours
    assert session.scalars(select(RollupDayMark.id).limit(1)).first() is None, "a day's mark was left"
    assert _stored(session, RollupDay, ("cube", "day", *columns)) == days


def mark_counts(session: Session) -> Counter[tuple[dt.datetime, int]]:
    """Return the marks waiting, by hour and source."""
    return Counter((hour, source) for hour, source in session.execute(select(RollupMark.hour, RollupMark.source)))


__all__ = ["check_rollups", "close_hours", "mark_counts", "raw_details"]
