"""Partners (affiliates)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class PartnerStatus(enum.StrEnum):
    #: Signed up (or created so by an admin), not yet approved: it may sign in and follow its review.
    PENDING = "pending"
    ACTIVE = "active"
    #: Stopped by an admin: no links, no sign-in.
    SUSPENDED = "suspended"
    #: Its sign-up was refused: no links, no sign-in.
    REJECTED = "rejected"


class Partner(Base):
    __tablename__ = "partners"
    __table_args__ = (CheckConstraint("status IN ('pending', 'active', 'suspended', 'rejected')", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default=PartnerStatus.ACTIVE.value)
    #: Template called on each conversion and status change (macros of SPEC §5).
    postback_url: Mapped[str | None] = mapped_column(Text)
    #: "get" calls the URL; "post" sends signed JSON (Standard Webhooks headers).
    postback_method: Mapped[str] = mapped_column(String(8), default="get")
    #: Keys the signature of POST deliveries; shown to the partner.
    postback_secret: Mapped[str | None] = mapped_column(String(80))
    #: Overrides PAYOUT_MIN_AMOUNT: a decimal string in major units, applied in each payout currency.
    payout_min_amount: Mapped[str | None] = mapped_column(String(32))
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    stripe_payouts_enabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class PartnerAddress(Base):
    """An address (IP) a partner signed in or called the API from, kept for the fraud window.

    Self-referral (conversions.rules): a conversion whose click came from one of these addresses is
    flagged. Written at most once per partner and address per `partners.addresses.TOUCH_EVERY`, and
    purged `CLICK_IP_RETENTION_DAYS` after it was last seen.
    """

    __tablename__ = "partner_addresses"

    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id", ondelete="CASCADE"), primary_key=True)
    #: The raw address, as clicks keep it (Click.ip).
    address: Mapped[str] = mapped_column(String(45), primary_key=True)
    last_seen: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
