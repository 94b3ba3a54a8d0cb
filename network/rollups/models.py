"""Hourly rollups of clicks and conversions, and the marks of hours whose raw rows changed since."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from network.db import Base, UTCDateTime

#: Which raw rows a mark or a detail row is about.
CLICKS = 1
CONVERSIONS = 2
#: The rollups' cubes, by the hour and by the day: the columns each sums by (the others are None in
#: its rows). A report reads the first cube holding every column it groups or filters by, its
#: tenant's included. Each has a row per combination seen in an hour or a day, whatever the number
#: of clicks: the second, without the offer, is the "by sub1,country" report's (a partner's sub ids
#: are its own), a tenth of the third's rows (bench/reports).
CUBES: dict[int, tuple[str, ...]] = {
    1: ("offer_id", "partner_id", "brand_id", "currency"),
    2: ("partner_id", "brand_id", "currency", "sub1", "country"),
    3: ("offer_id", "partner_id", "brand_id", "currency", "sub1", "sub2", "sub3", "sub4", "sub5", "country", "device"),
}
#: The cube by offer and partner only, the smallest.
BY_OFFER_AND_PARTNER = 1
#: The cube of every column: by the hour, rollup_details (the other cubes' hours are rollup_hours).
EVERY_COLUMN = 3


class RollupMark(Base):
    """An hour whose raw rows changed and are not rolled up since: written in the writer's transaction.

    Append-only: every writer transaction inserts its own (never ON CONFLICT), and the rollup job
    deletes the marks it rolls up, in the transaction that rolls them up.
    """

    __tablename__ = "rollup_marks"
    __table_args__ = (Index("ix_rollup_marks_hour", "hour"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Start of the UTC hour.
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: CLICKS or CONVERSIONS: which rows of the hour to roll up again.
    source: Mapped[int] = mapped_column(SmallInteger)


class _Sums:
    """The additive figures of a rollup row (money in minor units of its currency)."""

    clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    unique_clicks: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Conversions created in the hour, by their status now.
    pending: Mapped[int] = mapped_column(BigInteger, default=0)
    approved: Mapped[int] = mapped_column(BigInteger, default=0)
    rejected: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Sums over the conversions that count (pending and approved).
    sale_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class RollupDetail(_Sums, Base):
    """Clicks or conversions of one hour, by every dimension reports group or filter by."""

    __tablename__ = "rollup_details"
    __table_args__ = (Index("ix_rollup_details_hour", "hour", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    source: Mapped[int] = mapped_column(SmallInteger)
    offer_id: Mapped[int] = mapped_column(Integer)
    partner_id: Mapped[int] = mapped_column(Integer)
    brand_id: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    sub1: Mapped[str | None] = mapped_column(Text)
    sub2: Mapped[str | None] = mapped_column(Text)
    sub3: Mapped[str | None] = mapped_column(Text)
    sub4: Mapped[str | None] = mapped_column(Text)
    sub5: Mapped[str | None] = mapped_column(Text)
    #: The click's (a conversion's click's); None when unknown.
    country: Mapped[str | None] = mapped_column(String(2))
    device: Mapped[str | None] = mapped_column(String(16))


class RollupHour(_Sums, Base):
    """Clicks and conversions of one hour in one of the narrower cubes (CUBES but EVERY_COLUMN, which
    by the hour is rollup_details itself): the hour's details summed. A column outside the row's
    cube is None."""

    __tablename__ = "rollup_hours"
    __table_args__ = (Index("ix_rollup_hours_cube_hour", "cube", "hour"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube: Mapped[int] = mapped_column(SmallInteger)
    hour: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    partner_id: Mapped[int] = mapped_column(Integer)
    brand_id: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    sub1: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))


class RollupDay(_Sums, Base):
    """Clicks and conversions of one UTC day in one cube (CUBES): the day's hourly details summed.

    Rebuilt from rollup_details whenever an hour of the day was rolled up (a RollupDayMark says
    so); a report reads a day from here only when neither the day nor any of its hours is marked.
    A column outside the row's cube is None.
    """

    __tablename__ = "rollup_days"
    __table_args__ = (Index("ix_rollup_days_cube_day", "cube", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cube: Mapped[int] = mapped_column(SmallInteger)
    day: Mapped[dt.date] = mapped_column(Date)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    partner_id: Mapped[int] = mapped_column(Integer)
    brand_id: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    sub1: Mapped[str | None] = mapped_column(Text)
    sub2: Mapped[str | None] = mapped_column(Text)
    sub3: Mapped[str | None] = mapped_column(Text)
    sub4: Mapped[str | None] = mapped_column(Text)
    sub5: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    device: Mapped[str | None] = mapped_column(String(16))


class RollupDayMark(Base):
    """A day whose hours were rolled up since its daily rollups were rebuilt: inserted by the
    transaction that rolled the hour up, deleted by the one that rebuilds the day."""

    __tablename__ = "rollup_day_marks"
    __table_args__ = (Index("ix_rollup_day_marks_day", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)
