"""Partner postbacks: per-offer URLs, disabled URLs, the delivery outbox and its attempt log."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class DeliveryStatus(enum.StrEnum):
    #: Waiting for its next attempt at next_attempt_at (also while an attempt is in flight).
    PENDING = "pending"
    #: The partner's endpoint answered 2xx.
    DELIVERED = "delivered"
    #: Stopped without exhausting retries: the URL answered 410, was disabled or removed.
    FAILED = "failed"
    #: Dead-lettered: every scheduled attempt failed.
    DEAD = "dead"


#: Statuses a partner may send again by hand.
RETRYABLE = (DeliveryStatus.FAILED.value, DeliveryStatus.DEAD.value)

#: Target of a delivery: the partner's global postback_url, or one of its per-offer URLs.
GLOBAL = "global"


class OfferPostback(Base):
    """A partner's postback URL for one offer, called in addition to its global URL."""

    __tablename__ = "offer_postbacks"
    __table_args__ = (
        UniqueConstraint("partner_id", "offer_id"),
        CheckConstraint("method IN ('get', 'post')", name="method"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"), index=True)
    #: Template with the macros of SPEC §5, validated by netguard at save.
    url: Mapped[str] = mapped_column(Text)
    #: "get" calls the URL; "post" sends signed JSON to it.
    method: Mapped[str] = mapped_column(String(8), default="get")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


class PostbackDisable(Base):
    """A postback URL the network stopped calling (it answered 410), and why.

    Keyed by the URL's hash, so a partner who changes the URL enables it again; deleting the
    row enables the same URL again.
    """

    __tablename__ = "postback_disables"
    __table_args__ = (UniqueConstraint("partner_id", "target", "url_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    #: "global", or "offer:<offer_postback id>".
    target: Mapped[str] = mapped_column(String(32))
    #: SHA-256 (hex) of the URL template that was disabled.
    url_hash: Mapped[str] = mapped_column(String(64))
    #: The template, redacted (netguard.redact_url), for people to recognise it.
    url: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    delivery_id: Mapped[int | None] = mapped_column(Integer)
    disabled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class PostbackDelivery(Base):
    """One outbox row: tell one partner URL about one conversion status change."""

    __tablename__ = "postback_deliveries"
    __table_args__ = (
        Index("ix_postback_deliveries_due", "status", "next_attempt_at"),
        Index("ix_postback_deliveries_partner", "partner_id", "id"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed', 'dead')", name="status"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 0", name="attempts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: conversion:old>new:target; a repeated signal never makes a second row.
    dedupe_key: Mapped[str] = mapped_column(String(128), unique=True)
    #: Sent as the webhook-id header; the same on every retry, so partners can dedupe.
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offers.id"))
    conversion_id: Mapped[int] = mapped_column(ForeignKey("conversions.id"), index=True)
    #: "global", or "offer:<offer_postback id>" (see target_of).
    target: Mapped[str] = mapped_column(String(32))
    old_status: Mapped[str | None] = mapped_column(String(16))
    #: The conversion's status this delivery announces.
    new_status: Mapped[str] = mapped_column(String(16))
    #: When the conversion changed.
    event_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    #: Macro values as of the change (strings); sub ids may be completed at send time.
    macros: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Whether the sub ids came from the click row; if not (click rows are written in batches),
    #: they came from the link and are completed from the click at send time.
    subs_from_click: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    #: Attempts started (counted when leased, so a crash-looping row still dead-letters).
    attempts: Mapped[int] = mapped_column(default=0)
    #: Attempts allowed before dead-lettering; a manual retry grants one more.
    max_attempts: Mapped[int] = mapped_column(default=10)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: A delivery run holds the row until then; another run may take it afterwards.
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Which run holds the lease; outcomes are recorded only by that run.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    #: get or post, as used by the last attempt.
    method: Mapped[str | None] = mapped_column(String(8))
    #: The URL of the last attempt, redacted.
    url: Mapped[str | None] = mapped_column(Text)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc, onupdate=now_utc)


class PostbackAttempt(Base):
    """One try at a delivery: when, what came back, how long it took; the URL redacted."""

    __tablename__ = "postback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("postback_deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    method: Mapped[str] = mapped_column(String(8))
    #: netguard.redact_url of the URL called.
    url: Mapped[str] = mapped_column(Text)
    #: The HTTP status received; None when none arrived (blocked, timeout, refused).
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    #: The address connected to (after the send-time check).
    address: Mapped[str | None] = mapped_column(String(45))
    #: The first KB of the partner's answer, for debugging its endpoint.
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    #: Whether a delivery run recorded it as the row's outcome (False: its lease had lapsed).
    recorded: Mapped[bool] = mapped_column(default=True)
