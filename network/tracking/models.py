"""Tracking links, clicks and daily impression counts."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime

# The mapper events that mark the hours of rows the ORM writes (rollups): loaded with the models
# they watch, so no import order leaves an ORM-written row unmarked.
from network.rollups import marks as _marks  # noqa: F401


class Link(Base):
    """A partner's tracking link for one offer, with its default sub ids."""

    __tablename__ = "links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Short, URL-safe, random (not enumerable): the path of /c/{code}.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    sub1: Mapped[str | None] = mapped_column(String(255))
    sub2: Mapped[str | None] = mapped_column(String(255))
    sub3: Mapped[str | None] = mapped_column(String(255))
    sub4: Mapped[str | None] = mapped_column(String(255))
    sub5: Mapped[str | None] = mapped_column(String(255))
    #: Default deep link (within the offer's allowed_domains); a click's own `url=` wins.
    deep_link: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class Click(Base):
    """One click on a link; written in batches off the request path.

    On PostgreSQL the table is partitioned by month of `created_at` (network/tracking/partitions.py),
    so its key is (id, created_at); the click's identity, for the ORM too, is its id alone.
    """

    __tablename__ = "clicks"
    __table_args__ = (
        # Each index costs every click write; these serve the queries that read clicks, and no other:
        # the key: a click by its id (attribution, a partner postback's sub ids), its time too where known.
        # link_id: the links' click counts (the partner's offers page) and the foreign key.
        # offer_id, created_at: an offer's clicks of a time range, which is how the rollup job sums an
        #   hour and how reports read the raw rows after the rollups (reports.sources.Times.within).
        # ip held: the clicks still holding their raw IP, the IP purge's worklist; only the last
        #   CLICK_IP_RETENTION_DAYS of clicks are in it.
        Index("ix_clicks_offer_created", "offer_id", "created_at"),
        Index(
            "ix_clicks_ip_held",
            "created_at",
            postgresql_where=text("ip IS NOT NULL"),
            sqlite_where=text("ip IS NOT NULL"),
        ),
        # visitor: a visitor's clicks, of which first-click attribution (conversions/firstclick.py) takes
        #   the earliest on an offer in a window; only clicks that may be attributed, not bots' or
        #   fallbacks'. A hash index on PostgreSQL: a visitor has few clicks, and its 4-byte hash costs a
        #   click 47 bytes where a B-tree of (offer, visitor, time) cost 75 (bench/clickbytes, 50,000 clicks).
        Index(
            "ix_clicks_visitor",
            "visitor",
            postgresql_using="hash",
            postgresql_where=text("fallback_reason IS NULL AND NOT is_bot"),
            sqlite_where=text("fallback_reason IS NULL AND NOT is_bot"),
        ),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )
    __mapper_args__ = {"primary_key": ["id"]}

    #: The click id itself (network.tracking.clickid): it carries link and time under an HMAC.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), index=True)
    offer_id: Mapped[int] = mapped_column(Integer)
    partner_id: Mapped[int] = mapped_column(Integer)
    #: The click's time, the id's to the millisecond; the partition key on PostgreSQL.
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, primary_key=True)
    sub1: Mapped[str | None] = mapped_column(Text)
    sub2: Mapped[str | None] = mapped_column(Text)
    sub3: Mapped[str | None] = mapped_column(Text)
    sub4: Mapped[str | None] = mapped_column(Text)
    sub5: Mapped[str | None] = mapped_column(Text)
    utm: Mapped[dict[str, str] | None] = mapped_column(JSON)
    referrer: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(2))
    #: desktop, mobile, tablet, bot or other.
    device: Mapped[str | None] = mapped_column(String(16))
    #: Raw IP, kept CLICK_IP_RETENTION_DAYS for fraud checks, then nulled by a job.
    ip: Mapped[str | None] = mapped_column(String(45))
    #: Keyed hash of IP and user agent; what uniqueness and long-term records use.
    visitor: Mapped[str | None] = mapped_column(String(32))
    is_unique: Mapped[bool] = mapped_column(default=True)
    is_bot: Mapped[bool] = mapped_column(default=False)
    #: Why the click went to the fallback instead of the offer (paused, targeting, cap); None when it did not.
    fallback_reason: Mapped[str | None] = mapped_column(String(32))

    @property
    def billable(self) -> bool:
        """Return whether the click may be paid as CPC: unique, not a bot, and sent to the offer."""
        return self.is_unique and not self.is_bot and self.fallback_reason is None


class ClickVisitor(Base):
    """The start of a visitor's 24-hour uniqueness window on a link; decides Click.is_unique."""

    __tablename__ = "click_visitors"

    link_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    visitor: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Time of the visitor's last unique click on the link; the next one is unique 24 h after it.
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    #: The unique click before window_start, if known: decides a click older than window_start that
    #: a slower writer brings (network/tracking/unique.py).
    previous_start: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ImpressionCount(Base):
    """Impressions of a link in one UTC day."""

    __tablename__ = "impression_counts"
    __table_args__ = (UniqueConstraint("link_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    offer_id: Mapped[int] = mapped_column(Integer, index=True)
    partner_id: Mapped[int] = mapped_column(Integer, index=True)
    day: Mapped[dt.date] = mapped_column(Date)
    count: Mapped[int] = mapped_column(Integer, default=0)
