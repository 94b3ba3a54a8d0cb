"""The brand invariants of RELIABILITY.md, asserted on the database after each billing scenario."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from network.billing import service
from network.billing.models import BrandEntry
from network.clock import now_utc


def _rows(session: Session, sql: str) -> list[Any]:
    return list(session.execute(text(sql)).all())


def check_billing_invariants(session: Session) -> None:
    """For each brand and currency the ledger's sum = unbilled + invoiced unpaid + paid; no entry on two live invoices."""
    session.flush()
    # The items' primary key is the entry: no entry on two live invoices, and void ones hold none.
    assert _rows(session, "SELECT entry_id FROM invoice_items GROUP BY entry_id HAVING COUNT(*) > 1") == []
    assert (
        _rows(
            session,
            "SELECT i.id FROM invoices i JOIN invoice_items t ON t.invoice_id = i.id WHERE i.status = 'void'",
        )
        == []
    )
    # An invoice is the sum and count of the entries it holds (or held, when void), of its brand and currency.
    held = "SELECT invoice_id, entry_id FROM invoice_items UNION ALL SELECT invoice_id, entry_id FROM invoice_item_releases"
    assert (
        _rows(
            session,
            "SELECT v.id FROM invoices v"
            f" JOIN ({held}) h ON h.invoice_id = v.id JOIN brand_entries e ON e.id = h.entry_id"
            " GROUP BY v.id, v.amount_minor, v.entry_count"
            " HAVING v.amount_minor <> SUM(e.amount_minor) OR v.entry_count <> COUNT(*)"
            " OR MIN(e.brand_id) <> MAX(e.brand_id) OR MIN(e.brand_id) <> MIN(v.brand_id)"
            " OR MIN(e.currency) <> MAX(e.currency) OR MIN(e.currency) <> MIN(v.currency)",
        )
        == []
    )
    # Its lines add up to it.
    assert (
        _rows(
            session,
            "SELECT v.id FROM invoices v JOIN invoice_lines l ON l.invoice_id = v.id"
            " GROUP BY v.id, v.amount_minor HAVING v.amount_minor <> SUM(l.amount_minor)",
        )
        == []
    )
    # Numbers: only issued invoices have one, and they run 1..n without gaps.
    numbers = sorted(n for (n,) in _rows(session, "SELECT number FROM invoices WHERE number IS NOT NULL"))
    assert numbers == list(range(1, len(numbers) + 1))
    # The balance identity, per brand and currency.
    now = now_utc()
    for brand_id in set(session.scalars(select(BrandEntry.brand_id))):
        for row in service.balance_rows(session, brand_id, now=now):
            assert row["balance"] == row["unbilled"] + row["invoiced"] + row["paid"], row
            assert 0 <= row["overdue"] <= row["invoiced"] or row["invoiced"] < 0, row
