"""Margin per brand, offer, partner and day from the two ledgers: what brands owe (revenue) against
what partners earn (payout), CPC and CPM accruals included, and the profit between them.

Both ledgers book per conversion and, for CPC and CPM, per day, offer and partner: so margins group by
day, brand, offer and partner, never by sub ids, country or device (the accruals do not have them;
`LACKING` says so in every answer). A day is the day an entry was booked (CPC and CPM: the day after
their traffic, when the accrual job books them). Money movements that are not earnings are left out: partners'
payouts, payout reversals and adjustments; brands' prepayments and adjustments."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.billing.models import BrandEntry
from network.db import utc_day
from network.errors import ValidationError
from network.offers.models import Offer
from network.payouts.models import LedgerEntry

DIMENSIONS = ("day", "brand", "offer", "partner")
LACKING = (
    "sub1..sub5, country, device: CPC and CPM are accrued per day, offer and partner only;"
    " day is the day booked (CPC and CPM: the day after their traffic)"
)
_REVENUE_KINDS = ("revenue", "reversal", "cpc", "cpm")
_PAYOUT_KINDS = ("commission", "reversal", "clawback", "cpc", "cpm")


def _columns(table: Any, dimensions: list[str], brand: Any) -> list[Any]:
    named = {"day": utc_day(table.created_at).label("day"), "brand": brand.label("brand"),
             "offer": table.offer_id.label("offer"), "partner": table.partner_id.label("partner")}  # fmt: skip
    return [named[d] for d in dimensions]


def margins(
    session: Session, principal: Principal, *, start: dt.datetime, end: dt.datetime, group_by: list[str]
) -> list[dict[str, Any]]:
    """Return revenue, payout and profit per currency and the asked dimensions over [start, end) (finance, admin)."""
    require(principal, Role.FINANCE, Role.ADMIN)
    unknown = [d for d in group_by if d not in DIMENSIONS]
    if unknown:
        raise ValidationError(f"group_by: {unknown[0]!r} is not one of {', '.join(DIMENSIONS)}", field="group_by")
    dims = [d for d in DIMENSIONS if d in group_by]
    revenue_cols = _columns(BrandEntry, dims, BrandEntry.brand_id)
    revenue = session.execute(
        select(*revenue_cols, BrandEntry.currency, func.sum(BrandEntry.amount_minor))
        .where(BrandEntry.created_at >= start, BrandEntry.created_at < end, BrandEntry.kind.in_(_REVENUE_KINDS))
        .group_by(*revenue_cols, BrandEntry.currency)
    ).all()
    payout_cols = _columns(LedgerEntry, dims, Offer.brand_id)
    payout = session.execute(
        select(*payout_cols, LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
        .join(Offer, Offer.id == LedgerEntry.offer_id)
        .where(LedgerEntry.created_at >= start, LedgerEntry.created_at < end, LedgerEntry.kind.in_(_PAYOUT_KINDS))
        .group_by(*payout_cols, LedgerEntry.currency)
    ).all()
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for side, found in (("revenue_minor", revenue), ("payout_minor", payout)):
        for *keys, currency, amount in found:
            key = (*(str(k) if isinstance(k, dt.date) else k for k in keys), currency)
            row = rows.setdefault(
                key,
                {**dict(zip(dims, key[:-1], strict=True)), "currency": currency, "revenue_minor": 0, "payout_minor": 0},
            )
            row[side] += int(amount or 0)
    for row in rows.values():
        row["profit_minor"] = row["revenue_minor"] - row["payout_minor"]
    return [rows[k] for k in sorted(rows, key=lambda k: tuple("" if v is None else str(v) for v in k))]
