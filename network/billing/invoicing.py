"""Building invoices in SQL: one draft per brand and currency whose unbilled entries sum above zero,
holding exactly the entries it bills (invoice_items, keyed by the entry), with its lines.

Builds run one at a time (PostgreSQL: an advisory lock; SQLite: its one writer). Entries booked
while a build runs are either attached (and the invoice's sums made from what it holds) or left
unbilled for the next build; never on two invoices: the items' primary key is the entry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, case, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from network.billing.models import InvoiceStatus
from network.billing.tables import brand_entries, invoice_items, invoice_lines, invoices
from network.clock import now_utc

#: Arbitrary, fixed: the PostgreSQL advisory lock that lets one invoice build run at a time.
BUILD_LOCK = 0x494E564F  # "INVO"


def unbilled(upto_id: int, period_end: dt.datetime) -> Any:
    """Return the condition on brand_entries of entries up to `upto_id`, booked before `period_end`, on no live invoice."""
    held = select(literal(1)).where(invoice_items.c.entry_id == brand_entries.c.id).correlate(brand_entries).exists()
    return and_(brand_entries.c.id <= upto_id, brand_entries.c.created_at < period_end, ~held)


def build_invoices(
    session: Session, *, run_key: str, period_end: dt.datetime, now: dt.datetime | None = None
) -> list[int]:
    """Build a draft invoice per brand and currency from the unbilled entries booked before `period_end`; return ids."""
    now = now or now_utc()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(BUILD_LOCK)))
        session.execute(text("SELECT set_config('work_mem', '64MB', true)"))
    upto = session.scalar(select(func.max(brand_entries.c.id)))
    if upto is None:
        return []
    after = int(session.scalar(select(func.coalesce(func.max(invoices.c.id), 0))) or 0)
    total = func.sum(brand_entries.c.amount_minor)
    session.execute(
        insert(invoices).from_select(
            [
                "brand_id",
                "currency",
                "status",
                "amount_minor",
                "entry_count",
                "run_key",
                "period_end",
                "created_at",
                "attempts",
            ],
            select(
                brand_entries.c.brand_id,
                brand_entries.c.currency,
                literal(InvoiceStatus.DRAFT.value),
                total,
                func.count(),
                literal(run_key),
                literal(period_end, type_=invoices.c.period_end.type),
                literal(now, type_=invoices.c.created_at.type),
                literal(0),
            )
            .where(unbilled(upto, period_end))
            .group_by(brand_entries.c.brand_id, brand_entries.c.currency)
            .having(total > 0)
            .order_by(brand_entries.c.brand_id, brand_entries.c.currency),
        )
    )
    new = invoices.c.id > after
    expected = session.scalar(select(func.coalesce(func.sum(invoices.c.entry_count), 0)).where(new))
    if not expected:
        return []
    if session.get_bind().dialect.name == "postgresql":
        # Attaching reads invoice_items while it writes them: with a nested loop the planner may pick
        # for a small table, each entry would rescan every row inserted so far (quadratic; 68 s for
        # 100,000 entries). Tell it how many invoices there are, and make it hash (as the payout build).
        session.execute(text("ANALYZE invoices"))
        session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    attached = session.execute(
        insert(invoice_items).from_select(
            ["entry_id", "invoice_id"],
            select(brand_entries.c.id, invoices.c.id)
            .select_from(
                brand_entries.join(
                    invoices,
                    and_(
                        invoices.c.brand_id == brand_entries.c.brand_id, invoices.c.currency == brand_entries.c.currency
                    ),
                )
            )
            .where(new, unbilled(upto, period_end)),
        ),
        execution_options={"preserve_rowcount": True},
    ).rowcount  # type: ignore[attr-defined]
    if attached != expected:
        # An entry with a lower id committed between the sums and the attaching: make each new
        # invoice the sum of what it holds (never below zero: the CHECK refuses it, and then the
        # whole build is retried by the job).
        _reconcile(session, after)
    _write_lines(session, after)
    return list(session.scalars(select(invoices.c.id).where(new).order_by(invoices.c.id)))


def _reconcile(session: Session, after: int) -> None:
    """Make each invoice with an id above `after` the sum and count of the entries it holds."""
    sums = session.execute(
        select(invoice_items.c.invoice_id, func.sum(brand_entries.c.amount_minor), func.count())
        .join(brand_entries, brand_entries.c.id == invoice_items.c.entry_id)
        .where(invoice_items.c.invoice_id > after)
        .group_by(invoice_items.c.invoice_id)
    ).all()
    for invoice_id, amount, count in sums:
        session.execute(
            update(invoices).where(invoices.c.id == invoice_id).values(amount_minor=int(amount), entry_count=int(count))
        )


def _write_lines(session: Session, after: int) -> None:
    """Write the lines of each invoice with an id above `after`: per kind, offer and event, from what it holds."""
    entry = brand_entries
    each = entry.c.amount_minor // func.nullif(entry.c.quantity, 0)
    quantity = func.sum(entry.c.quantity)
    # The price of one, when every entry of the line has the same and it makes the line's amount.
    unit = case(
        (
            and_(func.min(each) == func.max(each), func.min(each) * quantity == func.sum(entry.c.amount_minor)),
            func.min(each),
        ),
        else_=None,
    )
    session.execute(
        insert(invoice_lines).from_select(
            ["invoice_id", "kind", "offer_id", "event_id", "quantity", "unit_minor", "amount_minor"],
            select(
                invoice_items.c.invoice_id,
                entry.c.kind,
                entry.c.offer_id,
                entry.c.event_id,
                quantity,
                unit,
                func.sum(entry.c.amount_minor),
            )
            .join(entry, entry.c.id == invoice_items.c.entry_id)
            .where(invoice_items.c.invoice_id > after)
            .group_by(invoice_items.c.invoice_id, entry.c.kind, entry.c.offer_id, entry.c.event_id)
            .order_by(invoice_items.c.invoice_id, entry.c.offer_id, entry.c.event_id, entry.c.kind),
        )
    )
