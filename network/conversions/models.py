"""Conversions, their status history, and the log of every postback received."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime

# The mapper events that mark the hours of rows the ORM writes (rollups): loaded with the models
# they watch, so no import order leaves an ORM-written row unmarked.
from network.rollups import marks as _marks  # noqa: F401


class ConversionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVERSED = "reversed"


class Conversion(Base):
    __tablename__ = "conversions"
    __table_args__ = (
        # Dedupe in the database: a replay can never make a second conversion.
        UniqueConstraint("offer_id", "event_id", "txn_id"),
        Index(
            "uq_conversions_click_event_no_txn",
            "click_id",
            "event_id",
            unique=True,
            sqlite_where=text("txn_id IS NULL"),
            postgresql_where=text("txn_id IS NULL"),
        ),
        Index("ix_conversions_status_hold", "status", "hold_until"),
        # A brand's status postback finds its conversion by txn_id among all the brand's offers.
        Index("ix_conversions_brand_txn", "brand_id", "txn_id"),
        Index("ix_conversions_partner_created", "partner_id", "created_at"),
        Index("ix_conversions_offer_created", "offer_id", "created_at"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected', 'reversed')", name="status"),
        CheckConstraint("payout_minor >= 0 AND revenue_minor >= 0", name="money"),
        CheckConstraint("amount_minor IS NULL OR amount_minor >= 0", name="amount"),
        CheckConstraint("attributed_by IN ('click', 'customer', 'coupon')", name="attributed_by"),
        # A customer's conversions, for the brand's customer pages and reports' customer counts.
        Index(
            "ix_conversions_brand_customer",
            "brand_id",
            "customer_id",
            sqlite_where=text("customer_id IS NOT NULL"),
            postgresql_where=text("customer_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("offer_events.id"))
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    #: The click id the postback named (verified by its HMAC); None for a customer's or coupon's without one.
    click_id: Mapped[str | None] = mapped_column(String(64))
    clicked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The brand's order/transaction id; the dedupe key per offer and event.
    txn_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    #: Why it was rejected or reversed (a reason code of SPEC §5, or the brand's words).
    reason: Mapped[str | None] = mapped_column(String(255))
    #: Fraud signals raised on it (rules.FLAGS, and over_credit); the offer's hold_flags among them, and
    #: over_credit always, hold it for review.
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    currency: Mapped[str] = mapped_column(String(3))
    #: Sale amount in minor units (revshare/hybrid), as the brand reported it.
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    #: What the partner earns, minor units, rounded once.
    payout_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    #: What the network earns from the brand, minor units.
    revenue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: Pending conversions become approved at this time unless rejected or flagged.
    hold_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: How it was attributed: by its click, by its customer's binding, or by a coupon code.
    attributed_by: Mapped[str] = mapped_column(String(16), default="click", server_default="click")
    #: The brand's id for its customer, when the postback sent one.
    customer_id: Mapped[str | None] = mapped_column(String(255))
    #: The coupon code the postback sent, when it is one of the brand's for this offer (as the brand wrote it).
    coupon: Mapped[str | None] = mapped_column(String(64))
    #: What each flag was raised on, by flag (rules.evidence; the anomaly job adds its own).
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ConversionHistory(Base):
    """Every status a conversion has had, who set it and why."""

    __tablename__ = "conversion_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversion_id: Mapped[int] = mapped_column(ForeignKey("conversions.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    actor: Mapped[str] = mapped_column(String(64))


class PostbackLog(Base):
    """Every postback or pixel call received, with its outcome; secrets redacted."""

    __tablename__ = "postback_log"
    __table_args__ = (Index("ix_postback_log_brand_received", "brand_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: postback or pixel.
    source: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    brand_id: Mapped[int | None] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    click_id: Mapped[str | None] = mapped_column(Text)
    txn_id: Mapped[str | None] = mapped_column(Text)
    #: The parameters received, with token and signature removed.
    params: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    http_status: Mapped[int] = mapped_column(Integer)
    conversion_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    duplicate: Mapped[bool] = mapped_column(default=False)
    remote_addr: Mapped[str | None] = mapped_column(String(45))
    #: The request's id (its X-Request-ID, as in the logs and in the answer's header).
    request_id: Mapped[str | None] = mapped_column(String(128))
