"""Stripe's invoice.* events for our invoices (verified and stored once by the payouts' webhook):
paid, voided, marked uncollectible change the status by a conditional UPDATE; payment_failed is noted."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from network.billing import service
from network.billing.tables import invoices

#: Event type -> (the statuses it may come from, the status it sets).
_MOVES = {
    "invoice.paid": (("open", "uncollectible"), "paid"),
    "invoice.voided": (("open", "uncollectible"), "void"),
    "invoice.marked_uncollectible": (("open",), "uncollectible"),
}
TYPES = frozenset({*_MOVES, "invoice.payment_failed"})


def handle(session: Session, event_type: str, remote: dict[str, Any], now: dt.datetime) -> str:
    """Apply one verified invoice event to the invoice Stripe made for ours; return what it did."""
    remote_id = remote.get("id")
    invoice_id = session.scalar(select(invoices.c.id).where(invoices.c.stripe_invoice_id == remote_id))
    if invoice_id is None:
        return "ignored: unknown invoice"
    if event_type == "invoice.payment_failed":
        session.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(last_error="stripe: a payment attempt failed")
        )
        return f"invoice {invoice_id}: payment failed"
    allowed, after = _MOVES[event_type]
    values: dict[str, Any] = {"status": after, "decided_at": now, "decided_by": "stripe"}
    if after == "paid":
        values |= {"paid_at": now, "paid_reference": str(remote_id)}
    changed = session.execute(
        update(invoices).where(invoices.c.id == invoice_id, invoices.c.status.in_(allowed)).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if not changed:
        return f"invoice {invoice_id}: already past it"
    if after == "void":
        service.release(session, invoice_id, now)
    return f"invoice {invoice_id} {after}"
