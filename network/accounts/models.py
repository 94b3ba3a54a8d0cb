"""Brands (advertisers), API keys, users (people) and partner applications."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class Brand(Base):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    #: Default currency for the brand's new offers.
    currency: Mapped[str] = mapped_column(String(3))
    #: Authenticates the brand's postbacks (as a parameter, or as the HMAC key of X-Signature).
    postback_token: Mapped[str] = mapped_column(String(64), unique=True)
    #: Whether partners' postbacks may carry the brand's {txn_id}.
    share_txn_id: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: Over its credit limit (billing's check_credit job sets it): its offers' new clicks go to their fallback.
    credit_hold: Mapped[bool] = mapped_column(default=False, server_default=false())


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'finance', 'brand', 'partner')", name="role"),
        CheckConstraint(
            "(role = 'brand') = (brand_id IS NOT NULL) AND (role = 'partner') = (partner_id IS NOT NULL)",
            name="binding",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The readable start of the key (e.g. "nk_admin_3f9a"), for people to tell keys apart.
    prefix: Mapped[str] = mapped_column(String(32))
    #: SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class User(Base):
    """A person who signs in to the web app; acts with `role` for the brand or partner it is bound to."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('admin', 'finance', 'brand', 'partner')", name="role"),
        CheckConstraint(
            "(role = 'brand') = (brand_id IS NOT NULL) AND (role = 'partner') = (partner_id IS NOT NULL)",
            name="binding",
        ),
        CheckConstraint("status IN ('invited', 'active', 'disabled')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Stored lower-cased and stripped, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: argon2id hash (PHC string); None until an invited user sets a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    #: invited (no password yet), active, disabled (may not sign in).
    status: Mapped[str] = mapped_column(String(16), default="active")
    #: Carried in each signed-in session; replaced at sign-out and password change, voiding every session.
    session_nonce: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class PartnerApplication(Base):
    """What an affiliate wrote when it signed up, and the admin's decision on it."""

    __tablename__ = "partner_applications"
    __table_args__ = (CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), unique=True)
    website: Mapped[str] = mapped_column(String(500))
    traffic_sources: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Principal label of the admin who decided.
    decided_by: Mapped[str | None] = mapped_column(String(64))
