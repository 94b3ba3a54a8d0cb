"""The brand ledger (what each brand owes the network), invoices, the entries they bill, their lines,
the invoice number counter and each brand's billing terms."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from network.clock import now_utc
from network.db import Base, UTCDateTime


class BrandEntryKind(enum.StrEnum):
    #: A conversion became approved: its revenue, what the brand owes for it.
    REVENUE = "revenue"
    #: An approved conversion was reversed or rejected: a credit (negative), billed on the next invoice.
    REVERSAL = "reversal"
    #: Daily accrual of unique, non-bot clicks at the offer's click revenue.
    CPC = "cpc"
    #: Daily accrual of impressions at the offer's revenue per 1,000.
    CPM = "cpm"
    #: A manual correction by finance (signed).
    ADJUSTMENT = "adjustment"
    #: Money the brand paid ahead (a manual credit): negative, drawn down by its next invoices.
    PREPAYMENT = "prepayment"


_KINDS_SQL = ", ".join(f"'{k.value}'" for k in BrandEntryKind)


class InvoiceStatus(enum.StrEnum):
    #: Built by the invoice job; finance reviews it, then issues or voids it.
    DRAFT = "draft"
    #: Issued (numbered, sent): the brand owes it until it is paid.
    OPEN = "open"
    PAID = "paid"
    #: Canceled: its entries are unbilled again.
    VOID = "void"
    #: Given up on; it still holds its entries (Stripe may still collect it).
    UNCOLLECTIBLE = "uncollectible"


_STATUSES_SQL = ", ".join(f"'{s.value}'" for s in InvoiceStatus)


class BrandEntry(Base):
    """One money movement between a brand and the network in one currency; never updated or deleted."""

    __tablename__ = "brand_entries"
    __table_args__ = (
        CheckConstraint(f"kind IN ({_KINDS_SQL})", name="kind"),
        CheckConstraint(
            "(kind IN ('revenue', 'cpc', 'cpm') AND amount_minor > 0)"
            " OR (kind IN ('reversal', 'prepayment') AND amount_minor < 0)"
            " OR (kind = 'adjustment' AND amount_minor <> 0)",
            name="sign",
        ),
        CheckConstraint("quantity >= 0", name="quantity"),
        Index("ix_brand_entries_brand_currency", "brand_id", "currency", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    currency: Mapped[str] = mapped_column(String(3))
    kind: Mapped[str] = mapped_column(String(16))
    #: Signed minor units: what the brand owes positive, credits negative.
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    #: How many units it is for: 1 conversion, the day's clicks (CPC) or impressions (CPM).
    quantity: Mapped[int] = mapped_column(BigInteger, default=1)
    #: Unique per money movement ("revenue-17", "brand-cpc-4-9-2026-11-27"), so a replay books nothing.
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    conversion_id: Mapped[int | None] = mapped_column(Integer)
    offer_id: Mapped[int | None] = mapped_column(Integer)
    #: The offer's event (conversions); None for CPC, CPM and adjustments.
    event_id: Mapped[int | None] = mapped_column(Integer)
    #: The partner whose traffic earned it (None for adjustments), for margins.
    partner_id: Mapped[int | None] = mapped_column(Integer)
    memo: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)


class Invoice(Base):
    """What one brand owes in one currency: exactly the entries attached to it (its items)."""

    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(f"status IN ({_STATUSES_SQL})", name="status"),
        CheckConstraint("amount_minor > 0 AND entry_count > 0", name="amount"),
        #: A number is given when the invoice is issued, never to a draft.
        CheckConstraint(
            "(number IS NULL) = (status = 'draft' OR (status = 'void' AND issued_at IS NULL))", name="number"
        ),
        Index("ix_invoices_brand", "brand_id", "currency", "id"),
        Index("ix_invoices_status", "status", "id"),
        Index("ix_invoices_stripe", "stripe_invoice_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default=InvoiceStatus.DRAFT.value)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    entry_count: Mapped[int] = mapped_column(Integer)
    #: The build that made it: the job's period ("2026-12-01T00:00:00+00:00") or "manual:...".
    run_key: Mapped[str] = mapped_column(String(64))
    #: It bills entries booked before this time.
    period_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=now_utc)
    #: Sequential per network, without gaps: given in the transaction that issues it.
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    issued_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    issued_by: Mapped[str | None] = mapped_column(String(64))
    due_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: manual or stripe: how it is collected (fixed when issued).
    gateway: Mapped[str | None] = mapped_column(String(16))
    paid_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: The payment's reference: finance's (a bank transfer's) or Stripe's invoice id.
    paid_reference: Mapped[str | None] = mapped_column(String(255))
    #: Who voided, paid or wrote it off last, when, and why.
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(String(255))
    #: Stripe Invoicing: the invoice there, its hosted page, and how far sending it got.
    stripe_invoice_id: Mapped[str | None] = mapped_column(String(255))
    hosted_url: Mapped[str | None] = mapped_column(Text)
    #: None (manual), pending (issued, not yet all sent), sent.
    stripe_state: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(String(300))
    #: A sender holds the invoice until then while it calls Stripe (so two never send it at once).
    leased_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    #: Tries at sending it to Stripe.
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class InvoiceItem(Base):
    """A brand entry a live invoice bills; keyed by the entry, so no entry is on two live invoices."""

    # As payout_items: a void invoice's items move to InvoiceItemRelease (the entries are unbilled
    # again). The primary key on the entry alone is what the database enforces.

    __tablename__ = "invoice_items"

    entry_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    invoice_id: Mapped[int] = mapped_column(Integer, index=True)


class InvoiceItemRelease(Base):
    """An entry a void invoice held, kept to show what that invoice was."""

    __tablename__ = "invoice_item_releases"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("brand_entries.id"), primary_key=True)
    released_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class InvoiceLine(Base):
    """One line of an invoice: an offer's event (or clicks, impressions, credits) with count, unit and amount."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    #: A brand entry kind: revenue, reversal, cpc, cpm, adjustment.
    kind: Mapped[str] = mapped_column(String(16))
    offer_id: Mapped[int | None] = mapped_column(Integer)
    event_id: Mapped[int | None] = mapped_column(Integer)
    #: Conversions, clicks, impressions or entries.
    quantity: Mapped[int] = mapped_column(BigInteger)
    #: The price of one (per 1,000 for impressions) when every entry of the line had the same; else None.
    unit_minor: Mapped[int | None] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class InvoiceCounter(Base):
    """The last invoice number given; locked FOR UPDATE by the transaction that issues the next."""

    __tablename__ = "invoice_counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_number: Mapped[int] = mapped_column(Integer, default=0)


class BrandBilling(Base):
    """A brand's billing terms and details: payment terms, its Stripe customer, what its invoices show."""

    __tablename__ = "brand_billing"
    __table_args__ = (CheckConstraint("payment_terms_days >= 0", name="terms"),)

    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id"), primary_key=True)
    #: Days from issue to due (Stripe's days_until_due).
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    #: Stored before any other Stripe call for the brand, so it is created once.
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    billing_email: Mapped[str | None] = mapped_column(String(255))
    #: The brand's legal name and address as its invoices show them.
    billing_address: Mapped[str | None] = mapped_column(Text)
    #: The most the brand may owe (unbilled + invoiced, unpaid) in its own currency; None: no limit.
    credit_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
