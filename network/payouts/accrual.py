"""Traffic accrual: each day's CPC and CPM earnings booked into the ledger once per offer, partner
and day (the idempotency key), so a job that runs again, or catches up a missed day, books nothing twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.billing import ledger as brand_ledger
from network.clock import UTC, now_utc
from network.offers.models import Offer
from network.payouts import rules
from network.payouts.models import EntryKind
from network.payouts.tables import entries, insert_ignoring_duplicates
from network.tracking.models import Click, ImpressionCount


def accrue_traffic(session: Session, *, day: dt.date, at: dt.datetime | None = None) -> dict[str, int]:
    """Book one day's CPC and CPM earnings per offer and partner, once per (offer, partner, day)."""
    # CPC counts unique, non-bot clicks that reached the offer (no fallback).
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + dt.timedelta(days=1)
    at = at or now_utc()
    clicks = session.execute(
        select(Click.offer_id, Click.partner_id, func.count(), Offer.click_payout_minor, Offer.currency)
        .join(Offer, Offer.id == Click.offer_id)
        .where(
            Click.created_at >= start,
            Click.created_at < end,
            Click.is_unique.is_(True),
            Click.is_bot.is_(False),
            Click.fallback_reason.is_(None),
            Offer.click_payout_minor > 0,
        )
        .group_by(Click.offer_id, Click.partner_id, Offer.click_payout_minor, Offer.currency)
    ).all()
    impressions = session.execute(
        select(
            ImpressionCount.offer_id,
            ImpressionCount.partner_id,
            func.sum(ImpressionCount.count),
            Offer.impression_payout_minor,
            Offer.currency,
        )
        .join(Offer, Offer.id == ImpressionCount.offer_id)
        .where(ImpressionCount.day == day, Offer.impression_payout_minor > 0)
        .group_by(ImpressionCount.offer_id, ImpressionCount.partner_id, Offer.impression_payout_minor, Offer.currency)
    ).all()
    rows: list[dict[str, Any]] = []
    for offer_id, partner_id, count, price, currency in clicks:
        rows.append(_accrual(EntryKind.CPC, offer_id, partner_id, currency, count * price, day, at, count))
    for offer_id, partner_id, count, price, currency in impressions:
        amount = rules.cpm_amount(int(count or 0), price)
        if amount > 0:
            rows.append(_accrual(EntryKind.CPM, offer_id, partner_id, currency, amount, day, at, int(count)))
    booked = insert_ignoring_duplicates(session, entries, rows, "idempotency_key")
    # The brands' side of the same traffic, in the same transaction.
    brand = brand_ledger.accrue_traffic(session, day=day, at=at, cpm_amount=rules.cpm_amount)
    return {"groups": len(rows), "booked": booked, "brand_booked": brand}


def _accrual(
    kind: EntryKind,
    offer_id: int,
    partner_id: int,
    currency: str,
    amount: int,
    day: dt.date,
    at: dt.datetime,
    units: int,
) -> dict[str, Any]:
    unit = "clicks" if kind is EntryKind.CPC else "impressions"
    return {
        "partner_id": partner_id,
        "currency": currency,
        "kind": kind.value,
        "amount_minor": int(amount),
        "idempotency_key": f"{kind.value}-{offer_id}-{partner_id}-{day.isoformat()}",
        "offer_id": offer_id,
        "conversion_id": None,
        "payout_id": None,
        "memo": f"{units} {unit} on {day.isoformat()}",
        "created_at": at,
    }
