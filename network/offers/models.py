"""Offers, their events (commission rules), caps, per-partner overrides and partner access."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from network.clock import now_utc
from network.db import Base, UTCDateTime


class OfferStatus(enum.StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    APPROVAL = "approval"
    PRIVATE = "private"


class Model(enum.StrEnum):
    CPA = "cpa"
    CPL = "cpl"
    CPI = "cpi"
    REVSHARE = "revshare"
    HYBRID = "hybrid"


FLAT_MODELS = frozenset({Model.CPA, Model.CPL, Model.CPI})
PERCENT_MODELS = frozenset({Model.REVSHARE, Model.HYBRID})


class AccessStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Offer(Base):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'paused', 'archived')", name="status"),
        CheckConstraint("visibility IN ('public', 'approval', 'private')", name="visibility"),
        CheckConstraint("conversion_window_days >= 0 AND hold_days >= 0 AND min_seconds >= 0", name="durations"),
        CheckConstraint(
            "click_payout_minor >= 0 AND click_revenue_minor >= 0 AND impression_payout_minor >= 0"
            " AND impression_revenue_minor >= 0",
            name="traffic_prices",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Where clicks go; may hold macros ({click_id}, {sub1}, ...).
    destination_url: Mapped[str] = mapped_column(Text)
    #: Hosts a deep link (`url=`) may point to, matched exactly.
    allowed_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.DRAFT.value)
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.PUBLIC.value)
    conversion_window_days: Mapped[int] = mapped_column(default=30)
    hold_days: Mapped[int] = mapped_column(default=0)
    min_seconds: Mapped[int] = mapped_column(default=0)
    #: ISO 3166 alpha-2 codes; empty means everywhere.
    countries: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Device classes (desktop, mobile, tablet); empty means all.
    devices: Mapped[list[str]] = mapped_column(JSON, default=list)
    fallback_url: Mapped[str | None] = mapped_column(Text)
    #: CPC: paid per unique, non-bot click; minor units.
    click_payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    click_revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: CPM: paid per 1,000 impressions; minor units.
    impression_payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    impression_revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Admin-granted permission to pay partners more than the brand pays the network.
    allow_loss: Mapped[bool] = mapped_column(default=False)
    #: Overrides the payout threshold for this offer's commissions; minor units.
    payout_min_minor: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)
    #: Who a conversion goes to when its click and another partner's coupon meet: `click` or `coupon`.
    coupon_rule: Mapped[str] = mapped_column(String(8), default="click", server_default="click")

    events: Mapped[list[OfferEvent]] = relationship(
        back_populates="offer", order_by="OfferEvent.position", cascade="all, delete-orphan"
    )
    caps: Mapped[list[Cap]] = relationship(back_populates="offer", order_by="Cap.id", cascade="all, delete-orphan")
    #: Which of the visitor's clicks on the offer a conversion goes to: last_click (the one its
    #: click id names) or first_click (the visitor's earliest inside the window).
    attribution: Mapped[str] = mapped_column(String(16), default="last_click")
    #: The fraud flags that hold a conversion pending for review; None: conversions.rules.HOLD_FLAGS.
    hold_flags: Mapped[list[str] | None] = mapped_column(JSON)


class OfferEvent(Base):
    """A goal of an offer and what it is worth; the first (position 0) is the default event."""

    __tablename__ = "offer_events"
    __table_args__ = (
        UniqueConstraint("offer_id", "key"),
        CheckConstraint("model IN ('cpa', 'cpl', 'cpi', 'revshare', 'hybrid')", name="model"),
        CheckConstraint(
            "payout_minor >= 0 AND revenue_minor >= 0 AND payout_percent >= 0 AND revenue_percent >= 0"
            " AND payout_percent <= 1000000 AND revenue_percent <= 1000000",
            name="figures",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(default=0)
    model: Mapped[str] = mapped_column(String(16))
    #: Flat part, minor units.
    payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Percent part in 1/10,000ths of a percent (money.PERCENT_SCALE).
    payout_percent: Mapped[int] = mapped_column(Integer, default=0)
    revenue_percent: Mapped[int] = mapped_column(Integer, default=0)

    offer: Mapped[Offer] = relationship(back_populates="events")
    #: Recurring terms (a bound customer's conversions without a click): for N months from its
    #: binding, or its first N conversions of this event; neither set: forever.
    recurring_months: Mapped[int | None] = mapped_column(Integer)
    recurring_conversions: Mapped[int | None] = mapped_column(Integer)


class PartnerOverride(Base):
    """Replaces an event's payout figures for one partner."""

    __tablename__ = "partner_overrides"
    __table_args__ = (
        UniqueConstraint("event_id", "partner_id"),
        CheckConstraint("payout_minor >= 0 AND payout_percent >= 0 AND payout_percent <= 1000000", name="figures"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("offer_events.id", ondelete="CASCADE"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    payout_percent: Mapped[int] = mapped_column(Integer, default=0)


class Cap(Base):
    __tablename__ = "caps"
    __table_args__ = (
        CheckConstraint("metric IN ('conversions', 'payout', 'clicks')", name="metric"),
        CheckConstraint("period IN ('day', 'week', 'month', 'lifetime')", name="period"),
        CheckConstraint("scope IN ('offer', 'partner')", name="scope"),
        CheckConstraint('"limit" >= 0', name="limit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    metric: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    #: A count, or minor units for the payout metric.
    limit: Mapped[int] = mapped_column(BigInteger)
    scope: Mapped[str] = mapped_column(String(16), default="offer")

    offer: Mapped[Offer] = relationship(back_populates="caps")


class CapCounter(Base):
    """How much of a cap a period has used; consumed by a conditional UPDATE so it never leaks."""

    __tablename__ = "cap_counters"
    __table_args__ = (
        UniqueConstraint("cap_id", "period_start", "partner_key"),
        CheckConstraint("used >= 0", name="used"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cap_id: Mapped[int] = mapped_column(ForeignKey("caps.id", ondelete="CASCADE"))
    period_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: The partner for partner-scoped caps; 0 for offer-wide ones (NULLs would not be unique).
    partner_key: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[int] = mapped_column(BigInteger, default=0)


class OfferAccess(Base):
    """A partner's application to an approval-only offer, or a brand's invitation to a private one."""

    __tablename__ = "offer_access"
    __table_args__ = (
        UniqueConstraint("offer_id", "partner_id"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        CheckConstraint("kind IN ('application', 'invitation')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
