"""Pure rules of attribution beyond the click: recurring terms, coupon codes, who wins a click and a coupon.

No database, no Flask. API: `add_months`, `recurring_reason`, `turn_needed`, `code_key`,
`code_problem`, `coupon_wins`, `RECURRING_ENDED`, `UNKNOWN_CUSTOMER`, `UNKNOWN_COUPON`, `COUPON_RULES`,
`ATTRIBUTED_BY`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

#: How a conversion was attributed: its click, its customer's binding, a coupon code.
ATTRIBUTED_BY = ("click", "customer", "coupon")
#: An offer's rule when a click and another partner's coupon meet: the click wins, or the coupon.
COUPON_RULES = ("click", "coupon")
#: A bound customer's conversion outside its event's recurring terms (N months, first N conversions).
RECURRING_ENDED = "recurring_ended"
#: A postback without a click whose customer_id the brand has no binding for (on the offer it names).
UNKNOWN_CUSTOMER = "unknown_customer"
#: A postback without a click whose coupon is none of the brand's (for the offer it names).
UNKNOWN_COUPON = "unknown_coupon"

#: What a coupon code may hold: letters, digits, `-` and `_`, so lower case is one spelling per code.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def add_months(at: dt.datetime, months: int) -> dt.datetime:
    """Return `at` moved `months` calendar months on, the day clamped to the month's last (Jan 31 + 1 = Feb 28/29)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def recurring_reason(*, bound_at: dt.datetime, now: dt.datetime, months: int | None) -> str | None:
    """Return `recurring_ended` when a bound customer's conversion comes N months or more after its binding."""
    if months is not None and now >= add_months(bound_at, months):
        return RECURRING_ENDED
    return None


def turn_needed(*, attributed_by: str, conversions: int | None) -> bool:
    """Return whether a conversion takes one of its customer's "first N conversions" (a count under a lock).

    Only those its binding earns: attributed by the customer; the one that bound it counts once bound.
    """
    return conversions is not None and attributed_by == "customer"


def code_key(code: str) -> str:
    """Return what a coupon code is matched on: its lower case (codes are ASCII, see code_problem)."""
    return code.lower()


def code_problem(code: str) -> str | None:
    """Return why a brand may not create `code` as a coupon, or None."""
    if not _CODE.fullmatch(code):
        return "must be 1 to 64 letters, digits, '-' or '_'"
    return None


def coupon_wins(*, rule: str, click_partner_id: int, coupon_partner_id: int) -> bool:
    """Return whether a coupon takes a conversion from the click it came with: another partner's, and the offer says so."""
    return coupon_partner_id != click_partner_id and rule == "coupon"
