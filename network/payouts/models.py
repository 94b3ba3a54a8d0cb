"""The append-only ledger, payouts and the entries they settle, payout runs, the money audit log,
Stripe webhook events and the scheduler's job claims."""

from __future__ import annotations

import datetime as dt
import enum

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
)
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class EntryKind(enum.StrEnum):
    #: A conversion became approved: what the partner earns.
    COMMISSION = "commission"
    #: An approved conversion was reversed or rejected before its commission was paid out.
    REVERSAL = "reversal"
    #: An approved conversion was reversed after its commission was paid (or sent): netted from the next payout.
    CLAWBACK = "clawback"
    #: Daily accrual of unique, non-bot clicks at the offer's click payout.
    CPC = "cpc"
    #: Daily accrual of impressions at the offer's payout per 1,000.
    CPM = "cpm"
    #: A manual correction by finance or an admin.
    ADJUSTMENT = "adjustment"
    #: Money sent to the partner (negative): written when a payout becomes paid.
    PAYOUT = "payout"
    #: A paid transfer was reversed: the money is the partner's balance again.
    PAYOUT_REVERSAL = "payout_reversal"


_KINDS_SQL = ", ".join(f"'{k.value}'" for k in EntryKind)


class PayoutStatus(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    ON_HOLD = "on_hold"
    APPROVED = "approved"
    #: Sent to the gateway; the outcome is not recorded yet (or was unknown: retried with the same key).
    PROCESSING = "processing"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"
    #: The transfer was reversed after it was paid.
    REVERSED = "reversed"


_STATUSES_SQL = ", ".join(f"'{s.value}'" for s in PayoutStatus)


class LedgerEntry(Base):
    """One money movement of a partner in one currency; never updated or deleted."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_KINDS_SQL})", name="kind"),
        CheckConstraint(
            "(kind IN ('commission', 'cpc', 'cpm', 'payout_reversal') AND amount_minor > 0)"
            " OR (kind IN ('reversal', 'clawback', 'payout') AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)",
            name="sign",
        ),
        Index("ix_ledger_entries_partner_currency", "partner_id", "currency", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    #: Signed minor units: earnings positive, reversals, clawbacks and payouts negative.
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    #: Unique per money movement ("commission-17", "payout-3", "cpc-4-9-2026-11-27"), so a replay books nothing.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    conversion_id: Mapped[int | None] = mapped_column(ForeignKey("conversions.id"), index=True)
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id"))
    #: The payout a payout or payout_reversal entry belongs to.
    payout_id: Mapped[int | None] = mapped_column(ForeignKey("payouts.id"), index=True)
    memo: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class PayoutRun(Base):
    """One run of the payout job (mature, build, settle) and, for the manual gateway, its CSV batch."""

    __tablename__ = "payout_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Who started it: "finance:12" (an API key), "admin:system" (scheduler, CLI).
    actor: Mapped[str] = mapped_column(String(64))
    #: run (mature + build + settle), build, settle or recover.
    kind: Mapped[str] = mapped_column(String(16), default="run")
    gateway: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    matured: Mapped[int] = mapped_column(Integer, default=0)
    built: Mapped[int] = mapped_column(Integer, default=0)
    paid: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    unknown: Mapped[int] = mapped_column(Integer, default=0)
    #: The CSV written for finance when the manual gateway settled payouts.
    export_path: Mapped[str | None] = mapped_column(Text)


class Payout(Base):
    """Money owed to one partner in one currency: exactly the entries attached to it (its items)."""

    __tablename__ = "payouts"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES_SQL})", name="status"),
        CheckConstraint("amount_minor > 0 AND entry_count > 0", name="amount"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_payouts_status", "status", "id"),
        Index("ix_payouts_partner", "partner_id", "id"),
        #: Stripe's transfer.reversed names the transfer.
        Index("ix_payouts_reference", "reference"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    entry_count: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=PayoutStatus.PENDING_APPROVAL.value)
    #: The run that built it.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("payout_runs.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    approved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    #: Who held, released or canceled it last, and when.
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(255))
    #: manual or stripe: the gateway it was sent through.
    gateway: Mapped[str | None] = mapped_column(String(16))
    #: The connected account it is sent to; fixed when sent so that every retry repeats the same request.
    destination: Mapped[str | None] = mapped_column(String(64))
    #: "payout-{id}", committed before the first gateway call and reused by every retry.
    idempotency_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    transfer_group: Mapped[str | None] = mapped_column(String(64))
    #: When the current idempotency key was first used: after 24 h Stripe forgets it.
    key_first_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: A settler or recoverer holds a processing payout's lease until then (so two never send at once).
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The gateway's transfer id (Stripe tr_..., or manual:payout-{id}).
    reference: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The run whose settlement paid it (the manual gateway's export batch).
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("payout_runs.id"))
    failure_reason: Mapped[str | None] = mapped_column(String(300))
    failed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reversed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class PayoutItem(Base):
    """A ledger entry a live payout settles; keyed by the entry, so no entry is in two live payouts."""

    # A failed or canceled payout's items move to PayoutItemRelease (its entries are available
    # again). One row per settled entry, written by one INSERT ... SELECT per build, so it carries
    # one index and no foreign keys: each would cost a row-locking check per entry (a build attaches
    # millions), and neither side can vanish: ledger entries are append-only (a trigger refuses
    # DELETE) and the build inserts only ids it reads in that statement. A payout's items are
    # found through its partner's entries (the ledger's partner index).

    __tablename__ = "payout_items"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    payout_id: Mapped[int] = mapped_column(Integer)


class PayoutItemRelease(Base):
    """An entry a failed or canceled payout held, kept to show what that payout was."""

    __tablename__ = "payout_item_releases"

    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("ledger_entries.id"), primary_key=True)
    released_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AuditLog(Base):
    """Every money-moving action: who, when, what, on which object, with details."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_object", "object_type", "object_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: The principal's label ("finance:7"), "admin:system" for jobs, "stripe" for webhooks.
    actor: Mapped[str] = mapped_column(String(64))
    #: e.g. payout.approved, payout.paid, payout.failed, run.built, stripe.onboarding.
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class StripeEvent(Base):
    """A Stripe webhook event handled once: a replay of the same id is a no-op."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: What handling it did ("payout 4 reversed", "ignored").
    outcome: Mapped[str | None] = mapped_column(String(255))


class JobClaim(Base):
    """One scheduler job run for one period; the unique row makes a second scheduler skip it."""

    __tablename__ = "job_claims"
    __table_args__ = (UniqueConstraint("job_id", "period_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64))
    #: The period the run covers: its scheduled fire time, or "manual:..." for run-now.
    period_key: Mapped[str] = mapped_column(String(64))
    #: hostname:pid of the process that claimed it.
    claimed_by: Mapped[str] = mapped_column(String(128))
    claimed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: ok or error.
    outcome: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[str | None] = mapped_column(Text)


class JobStatus(Base):
    """What an operator sees of one scheduled job: its schedule, its last success and its last failure.

    Written by the scheduler (network/scheduler.py): the schedule when it starts, the rest as runs end.
    """

    __tablename__ = "job_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(255))
    #: The trigger in words ("cron[minute='*/5']").
    schedule: Mapped[str] = mapped_column(String(255))
    #: When a scheduler first declared the job: a period before it was never the scheduler's to run.
    declared_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    next_run_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_success_period: Mapped[str | None] = mapped_column(String(64))
    last_success_ms: Mapped[int | None] = mapped_column(Integer)
    #: What the run returned, as text.
    last_success_outcome: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_failure_period: Mapped[str | None] = mapped_column(String(64))
    #: The error's class and message (no traceback: that is in the log).
    last_failure_reason: Mapped[str | None] = mapped_column(Text)
    #: Failed tries since the last success (0 once it succeeds).
    failures: Mapped[int] = mapped_column(Integer, default=0)
