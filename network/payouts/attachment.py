"""Which ledger entries a payout holds: attached by a build, released when it fails or is canceled.

An entry is attached to at most one live payout: payout_items is keyed by the entry."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, insert, literal, select
from sqlalchemy.orm import Session

from network.payouts.models import EntryKind
from network.payouts.tables import entries, item_releases, items, payouts


def unattached() -> ColumnElement[bool]:
    """Return the condition on `entries` of money no live payout holds (payout debits excluded)."""
    attached = select(literal(1)).where(items.c.entry_id == entries.c.id).correlate(entries).exists()
    return and_(entries.c.kind != EntryKind.PAYOUT.value, ~attached)


def attach(session: Session, run_id: int) -> int:
    """Attach every unattached entry of the run's partners and currencies to their payout; return how many."""
    result = session.execute(
        insert(items).from_select(
            ["payout_id", "entry_id"],
            select(payouts.c.id, entries.c.id)
            .select_from(
                entries.join(
                    payouts,
                    and_(payouts.c.partner_id == entries.c.partner_id, payouts.c.currency == entries.c.currency),
                )
            )
            .where(payouts.c.run_id == run_id, unattached()),
        ),
        # SQLAlchemy keeps an INSERT's row count only when asked.
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def items_of(payout_id: Any, partner_id: Any, currency: Any) -> ColumnElement[bool]:
    """Return the condition selecting a payout's items, reached through its partner's ledger."""
    # payout_items is keyed by entry alone (one index, appended in ledger order by a build): a
    # payout's items are those of its partner's entries in its currency that name it.
    held = select(entries.c.id).where(entries.c.partner_id == partner_id, entries.c.currency == currency)
    return and_(items.c.payout_id == payout_id, items.c.entry_id.in_(held.scalar_subquery()))


def release(session: Session, payout_id: int, now: dt.datetime) -> None:
    """Return a payout's entries to the available balance, keeping a record of what it held."""
    partner_id, currency = session.execute(
        select(payouts.c.partner_id, payouts.c.currency).where(payouts.c.id == payout_id)
    ).one()
    held = items_of(payout_id, partner_id, currency)
    session.execute(
        insert(item_releases).from_select(
            ["payout_id", "entry_id", "released_at"],
            select(items.c.payout_id, items.c.entry_id, literal(now, type_=item_releases.c.released_at.type)).where(
                held
            ),
        )
    )
    session.execute(delete(items).where(held))
