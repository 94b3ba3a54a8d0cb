"""Pure billing rules: which invoice status may follow which, which are live, due dates, numbers."""

from __future__ import annotations

import datetime as dt

from network.errors import Conflict

#: Statuses of invoices that hold their entries: an entry is on at most one of these.
LIVE = ("draft", "open", "paid", "uncollectible")
#: Issued and not paid: what the brand owes on invoices.
UNPAID = ("open", "uncollectible")

#: What each action does: the statuses it may start from, and the status it leaves.
ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "issue": (("draft",), "open"),
    "void": (("draft", "open", "uncollectible"), "void"),
    "mark_paid": (("open", "uncollectible"), "paid"),
    "mark_uncollectible": (("open",), "uncollectible"),
}


def next_status(action: str, current: str) -> str:
    """Return the status `action` leaves an invoice in, or raise Conflict when `current` does not allow it."""
    allowed, after = ACTIONS[action]
    if current not in allowed:
        raise Conflict(f"an invoice that is {current} cannot be {after if action != 'issue' else 'issued'}")
    return after


def due_at(issued_at: dt.datetime, terms_days: int) -> dt.datetime:
    """Return when an invoice issued at `issued_at` is due under the brand's payment terms."""
    return issued_at + dt.timedelta(days=terms_days)


def is_overdue(status: str, due: dt.datetime | None, now: dt.datetime) -> bool:
    """Say whether an invoice is overdue: issued, unpaid, and past its due time."""
    return status in UNPAID and due is not None and now >= due


def invoice_label(number: int | None, prefix: str = "INV-") -> str | None:
    """Return an invoice number as people read it ("INV-000042"), or None before it is issued."""
    return None if number is None else f"{prefix}{number:06d}"


def over_credit(exposure_minor: int, limit_minor: int | None) -> bool:
    """Say whether a brand owing `exposure_minor` (unbilled + invoiced, unpaid) has reached its credit limit."""
    return limit_minor is not None and exposure_minor >= limit_minor
