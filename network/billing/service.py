"""Invoices for people and programs: who may see which, issuing (a gapless number), voiding,
marking paid or uncollectible, and a brand's balances per currency."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, delete, func, insert, literal, select, update
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.billing import rules
from network.billing.models import BrandBilling, Invoice, InvoiceLine, InvoiceStatus
from network.billing.tables import (
    brand_entries,
    invoice_counters,
    invoice_item_releases,
    invoice_items,
    invoices,
)
from network.clock import now_utc
from network.db import for_update, insert_new, paged, where_given
from network.errors import Conflict, NotFound

#: The counter row invoice numbers come from: one sequence per network.
COUNTER = "network"


def _brand_scope(principal: Principal, brand_id: int | None = None) -> int | None:
    """Return the brand a principal is bound to (a brand), or `brand_id` (finance, admin); partners never see billing."""
    require(principal, Role.BRAND, Role.FINANCE, Role.ADMIN)
    if principal.role is Role.BRAND:
        return principal.brand_id
    return brand_id


def get_invoice(session: Session, principal: Principal, invoice_id: int) -> Invoice:
    """Return an invoice the principal may see (its brand, finance, admin), else NotFound."""
    invoice = session.get(Invoice, invoice_id)
    scope = _brand_scope(principal)
    # A brand sees its invoices once issued; a draft is finance's to review.
    if invoice is None or (principal.role is Role.BRAND and (invoice.brand_id != scope or invoice.issued_at is None)):
        raise NotFound("invoice not found")
    return invoice


def list_invoices(
    session: Session,
    principal: Principal,
    *,
    brand_id: int | None = None,
    status: str | None = None,
    currency: str | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[Invoice]:
    """Return a page of invoices, newest last, scoped to the principal's brand (finance and admin: any)."""
    scope = _brand_scope(principal, brand_id)
    query = where_given(
        select(Invoice), (Invoice.brand_id, scope), (Invoice.status, status), (Invoice.currency, currency)
    )
    if principal.role is Role.BRAND:
        query = query.where(Invoice.issued_at.is_not(None))
    return list(session.scalars(paged(query, Invoice.id, limit=limit, after=after)))


def lines_of(session: Session, invoice: Invoice) -> list[InvoiceLine]:
    """Return an invoice's lines in the order it shows them."""
    return list(
        session.scalars(select(InvoiceLine).where(InvoiceLine.invoice_id == invoice.id).order_by(InvoiceLine.id))
    )


def terms_of(session: Session, brand_id: int) -> BrandBilling:
    """Return a brand's billing terms, made with the defaults the first time they are asked for."""
    session.execute(
        insert_new(session, BrandBilling.__table__, keys=["brand_id"]).values(brand_id=brand_id, payment_terms_days=30)
    )
    terms = session.get(BrandBilling, brand_id)
    assert terms is not None
    return terms


def _next_number(session: Session) -> int:
    """Take the next invoice number: the counter row locked FOR UPDATE until this transaction ends."""
    session.execute(insert_new(session, invoice_counters, keys=["name"]).values(name=COUNTER, last_number=0))
    last = session.scalar(
        for_update(select(invoice_counters.c.last_number).where(invoice_counters.c.name == COUNTER), session)
    )
    number = int(last or 0) + 1
    session.execute(update(invoice_counters).where(invoice_counters.c.name == COUNTER).values(last_number=number))
    return number


def _move(session: Session, invoice_id: int, action: str, **values: Any) -> None:
    """Change an invoice's status by `action` with one conditional UPDATE; Conflict when it moved meanwhile."""
    allowed, after = rules.ACTIONS[action]
    gateway = session.scalar(select(invoices.c.gateway).where(invoices.c.id == invoice_id))
    if gateway == "stripe" and action != "issue":
        # Stripe holds it and may still collect it: it is voided, written off or marked paid there,
        # and its webhook moves ours (never the other way round, which would leave it payable there).
        raise Conflict("this invoice is collected through Stripe: void, write off or mark it paid in Stripe")
    current = session.scalar(select(invoices.c.status).where(invoices.c.id == invoice_id))
    rules.next_status(action, str(current))
    changed = session.execute(
        update(invoices)
        .where(invoices.c.id == invoice_id, invoices.c.status.in_(allowed))
        .values(status=after, **values)
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        raise Conflict("the invoice changed meanwhile; read it again")


def issue(
    session: Session, principal: Principal, invoice_id: int, *, gateway: str, now: dt.datetime | None = None
) -> Invoice:
    """Issue a draft (finance, admin): give it the next number, its due date and its gateway."""
    require(principal, Role.FINANCE, Role.ADMIN)
    now = now or now_utc()
    invoice = get_invoice(session, principal, invoice_id)
    terms = terms_of(session, invoice.brand_id)
    # The number is taken under the counter's lock and the status changed in the same transaction:
    # if the invoice was issued meanwhile (Conflict) the transaction rolls back, number included.
    _move(
        session, invoice_id, "issue", number=_next_number(session), issued_at=now, issued_by=principal.label,
        gateway=gateway, due_at=rules.due_at(now, terms.payment_terms_days),
        stripe_state="pending" if gateway == "stripe" else None,
    )  # fmt: skip
    session.refresh(invoice)
    return invoice


def release(session: Session, invoice_id: int, now: dt.datetime) -> None:
    """Return a void invoice's entries to the unbilled balance, keeping a record of what it held."""
    held = invoice_items.c.invoice_id == invoice_id
    session.execute(
        insert(invoice_item_releases).from_select(
            ["invoice_id", "entry_id", "released_at"],
            select(
                invoice_items.c.invoice_id,
                invoice_items.c.entry_id,
                literal(now, type_=invoice_item_releases.c.released_at.type),
            ).where(held),
        )
    )
    session.execute(delete(invoice_items).where(held))


def void(session: Session, principal: Principal, invoice_id: int, *, reason: str | None = None) -> Invoice:
    """Void an invoice (finance, admin): its entries are unbilled again, billed by the next build."""
    require(principal, Role.FINANCE, Role.ADMIN)
    now = now_utc()
    invoice = get_invoice(session, principal, invoice_id)
    _move(session, invoice_id, "void", decided_at=now, decided_by=principal.label, note=reason)
    release(session, invoice_id, now)
    session.refresh(invoice)
    return invoice


def mark_paid(session: Session, principal: Principal, invoice_id: int, *, reference: str) -> Invoice:
    """Record that an issued invoice was paid outside (finance, admin), with the payment's reference."""
    require(principal, Role.FINANCE, Role.ADMIN)
    now = now_utc()
    invoice = get_invoice(session, principal, invoice_id)
    _move(
        session, invoice_id, "mark_paid", paid_at=now, paid_reference=reference, decided_at=now,
        decided_by=principal.label,
    )  # fmt: skip
    session.refresh(invoice)
    return invoice


def mark_uncollectible(
    session: Session, principal: Principal, invoice_id: int, *, reason: str | None = None
) -> Invoice:
    """Give up collecting an issued invoice (finance, admin); it still holds its entries."""
    require(principal, Role.FINANCE, Role.ADMIN)
    now = now_utc()
    invoice = get_invoice(session, principal, invoice_id)
    _move(session, invoice_id, "mark_uncollectible", decided_at=now, decided_by=principal.label, note=reason)
    session.refresh(invoice)
    return invoice


def balances(
    session: Session, principal: Principal, brand_id: int, *, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Return a brand's unbilled, invoiced (unpaid), paid and overdue money per currency (the brand, finance, admin)."""
    scope = _brand_scope(principal, brand_id)
    if scope != brand_id or session.get(Brand, brand_id) is None:
        raise NotFound("brand not found")
    return balance_rows(session, brand_id, now=now or now_utc())


def balance_rows(session: Session, brand_id: int, *, now: dt.datetime) -> list[dict[str, Any]]:
    """Return per currency: balance (the ledger's sum) = unbilled + invoiced + paid; in_draft, overdue within them."""
    entry = brand_entries
    status = invoices.c.status
    amount = entry.c.amount_minor

    def total(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)

    issued = and_(invoices.c.id.is_not(None), status != InvoiceStatus.DRAFT.value)
    rows = session.execute(
        select(
            entry.c.currency,
            func.sum(amount),
            total(~issued),
            total(and_(issued, status.in_(rules.UNPAID))),
            total(and_(issued, status == InvoiceStatus.PAID.value)),
            total(status == InvoiceStatus.DRAFT.value),
            total(and_(issued, status.in_(rules.UNPAID), invoices.c.due_at <= now)),
        )
        .select_from(
            entry.outerjoin(invoice_items, invoice_items.c.entry_id == entry.c.id).outerjoin(
                invoices, invoices.c.id == invoice_items.c.invoice_id
            )
        )
        .where(entry.c.brand_id == brand_id)
        .group_by(entry.c.currency)
        .order_by(entry.c.currency)
    ).all()
    return [
        {
            "currency": currency,
            "balance": int(balance),
            "unbilled": int(unbilled),
            "invoiced": int(invoiced),
            "paid": int(paid),
            "in_draft": int(draft),
            "overdue": int(overdue),
        }
        for currency, balance, unbilled, invoiced, paid, draft, overdue in rows
    ]
