"""Customers bound to the partner that brought them, their recurring counts, and coupon codes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class Customer(Base):
    """A brand's customer bound to the partner, link and offer of its first attributed conversion."""

    __tablename__ = "customers"
    __table_args__ = (
        # One binding per brand and customer: two first conversions at once make one (ON CONFLICT DO NOTHING).
        UniqueConstraint("brand_id", "customer_id"),
        Index("ix_customers_partner", "partner_id"),
        Index("ix_customers_offer", "offer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    #: The brand's own id for its customer, as its postbacks send it (`customer_id`).
    customer_id: Mapped[str] = mapped_column(String(255))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: The link its later conversions are attributed to (the binding conversion's, or the partner's after a move).
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    #: When the first attributed conversion bound it: "N months" of recurring terms count from here.
    bound_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: The conversion that bound it (a plain reference: conversions sit above this domain).
    conversion_id: Mapped[int | None] = mapped_column(Integer)
    #: The last time a brand or admin moved it to another partner.
    moved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class CustomerCount(Base):
    """How many conversions of an event a customer has earned its partner, for "first N conversions" terms.

    Taken by a conditional UPDATE (`used < limit`) in the conversion's transaction, so two renewals
    at once never both pass the limit; kept when the customer moves, deleted when it is unbound.
    """

    __tablename__ = "customer_counts"
    __table_args__ = (CheckConstraint("used >= 0", name="used"),)

    brand_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("offer_events.id", ondelete="CASCADE"), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)


class Coupon(Base):
    """A coupon code a brand assigned to a partner for one offer; its sales are attributed without a click."""

    __tablename__ = "coupons"
    __table_args__ = (
        # Unique per brand whatever the case: `SPRING10` and `spring10` are one code.
        UniqueConstraint("brand_id", "code_key"),
        Index("ix_coupons_partner", "partner_id"),
        Index("ix_coupons_offer", "offer_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: The link made for the coupon: its conversions are the link's in reports, like a click's.
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    #: The code as the brand wrote it.
    code: Mapped[str] = mapped_column(String(64))
    #: The code in lower case: what uniqueness and postbacks match on (rules.code_key).
    code_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
