"""Sending issued invoices to Stripe Invoicing in atomic phases, as payouts settle (RELIABILITY.md).

(1) Issuing commits the invoice `open` with gateway stripe and stripe_state `pending`. (2) A sender
leases it and calls Stripe outside any transaction, each call keyed by our ids; (3) after each call
it commits how far it got: the brand's Customer id (before any other call for the brand), the
Stripe invoice id (`created`), every line added (`items`), finalized (`finalized`, its hosted page),
e-mailed (`sent`). A sender killed between a call and its record leaves the invoice at the step
before; the next sender repeats that call with the same key and gets the same object. After the
key window it looks for the invoice by its metadata first, and adds only the lines not there yet."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import or_, select, update

from network.accounts.models import Brand
from network.billing import documents, service
from network.billing.models import BrandBilling, Invoice
from network.billing.stripe_invoicing import InvoicingError, StripeInvoicing
from network.billing.tables import brand_billing, invoices
from network.clock import now_utc
from network.db import Database

log = logging.getLogger(__name__)

#: How long a sender holds an invoice while it calls Stripe.
LEASE = dt.timedelta(minutes=5)
#: Stripe keeps an idempotency key this long; a little less, to be safe.
KEY_WINDOW = dt.timedelta(hours=23)
_ORDER = ("pending", "created", "items", "finalized", "sent")

_hook: Callable[[str, int], None] = lambda _phase, _invoice_id: None  # noqa: E731


def set_phase_hook(hook: Callable[[str, int], None] | None) -> None:
    """Call `hook(phase, invoice_id)` after each Stripe call, before it is recorded (crash tests)."""
    global _hook
    _hook = hook or (lambda _phase, _invoice_id: None)


def due(database: Database, *, now: dt.datetime | None = None) -> list[int]:
    """Return the issued Stripe invoices not yet all sent and not leased."""
    now = now or now_utc()
    with database.session_scope() as session:
        return list(
            session.scalars(
                select(invoices.c.id)
                .where(
                    invoices.c.gateway == "stripe",
                    invoices.c.status == "open",
                    invoices.c.stripe_state != "sent",
                    or_(invoices.c.leased_until.is_(None), invoices.c.leased_until < now),
                )
                .order_by(invoices.c.id)
            )
        )


def _lease(database: Database, invoice_id: int, now: dt.datetime) -> bool:
    with database.session_scope() as session:
        taken = session.execute(
            update(invoices)
            .where(
                invoices.c.id == invoice_id,
                invoices.c.gateway == "stripe",
                invoices.c.status == "open",
                invoices.c.stripe_state != "sent",
                or_(invoices.c.leased_until.is_(None), invoices.c.leased_until < now),
            )
            .values(leased_until=now + LEASE, attempts=invoices.c.attempts + 1)
        ).rowcount  # type: ignore[attr-defined]
    return bool(taken)


def _record(database: Database, invoice_id: int, **values: Any) -> None:
    with database.session_scope() as session:
        session.execute(update(invoices).where(invoices.c.id == invoice_id).values(**values))


def _customer(database: Database, client: StripeInvoicing, brand_id: int) -> str:
    """Return the brand's Stripe Customer, creating it once and storing its id before anything else."""
    with database.session_scope() as session:
        terms = service.terms_of(session, brand_id)
        if terms.stripe_customer_id:
            return terms.stripe_customer_id
        brand = session.get(Brand, brand_id)
        name, email = (brand.name if brand else str(brand_id)), terms.billing_email
    customer = client.create_customer(brand_id=brand_id, name=name, email=email)
    _hook("customer_created", brand_id)
    with database.session_scope() as session:
        session.execute(
            update(brand_billing)
            .where(brand_billing.c.brand_id == brand_id, brand_billing.c.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer)
        )
        stored = session.scalar(select(BrandBilling.stripe_customer_id).where(BrandBilling.brand_id == brand_id))
    return str(stored)


def send_one(
    database: Database, client: StripeInvoicing, invoice_id: int, *, now: dt.datetime | None = None
) -> str | None:
    """Take an issued invoice as far as Stripe's `sent`; return its stripe_state, or None when not ours to send."""
    now = now or now_utc()
    if not _lease(database, invoice_id, now):
        return None
    try:
        return _advance(database, client, invoice_id, now)
    except InvoicingError as error:
        # Unknown or refused, the next try repeats the step with the same key (or, refused, shows why).
        _record(database, invoice_id, last_error=str(error)[:300], leased_until=None)
        log.warning("invoice %s: sending to Stripe stopped: %s", invoice_id, error)
        return "error"


def _advance(database: Database, client: StripeInvoicing, invoice_id: int, now: dt.datetime) -> str:
    with database.session_scope() as session:
        invoice = session.get(Invoice, invoice_id)
        assert invoice is not None
        brand_id, currency, remote_id = invoice.brand_id, invoice.currency, invoice.stripe_invoice_id
        state, issued_at = invoice.stripe_state or "pending", invoice.issued_at or now
        terms_days = service.terms_of(session, brand_id).payment_terms_days
        lines = [
            (line.id, line.amount_minor, documents.line_label(session, line))
            for line in service.lines_of(session, invoice)
        ]
    customer = _customer(database, client, brand_id)
    if remote_id is None:
        found = client.find_invoice(invoice_id=invoice_id, customer=customer) if now - issued_at >= KEY_WINDOW else None
        remote = found or client.create_invoice(
            invoice_id=invoice_id, customer=customer, currency=currency, days_until_due=terms_days
        )
        _hook("invoice_created", invoice_id)
        remote_id, state = remote.id, "created"
        _record(database, invoice_id, stripe_invoice_id=remote_id, stripe_state=state)
    if _ORDER.index(state) < _ORDER.index("items"):
        there = client.item_lines(remote_id=remote_id)
        for line_id, amount, text in lines:
            if amount != 0 and str(line_id) not in there:
                client.add_item(
                    invoice_id=invoice_id, line_id=line_id, customer=customer, remote_id=remote_id, amount=amount,
                    currency=currency, text=text,
                )  # fmt: skip
        _hook("items_added", invoice_id)
        state = "items"
        _record(database, invoice_id, stripe_state=state)
    if state == "items":
        remote = client.retrieve(remote_id=remote_id)
        if remote.status == "draft":
            remote = client.finalize(invoice_id=invoice_id, remote_id=remote_id)
        _hook("finalized", invoice_id)
        state = "finalized"
        _record(database, invoice_id, stripe_state=state, hosted_url=remote.hosted_url)
    if state == "finalized":
        client.send(invoice_id=invoice_id, remote_id=remote_id)
        _hook("sent", invoice_id)
        state = "sent"
        _record(database, invoice_id, stripe_state=state, leased_until=None, last_error=None)
    return state


def send_due(database: Database, client: StripeInvoicing, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Send every issued Stripe invoice not yet all sent (the scheduler's recovery, every few minutes)."""
    outcomes: dict[str, int] = {}
    for invoice_id in due(database, now=now):
        outcome = send_one(database, client, invoice_id, now=now) or "skipped"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
