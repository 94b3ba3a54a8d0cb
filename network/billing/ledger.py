"""The brand ledger: what each brand owes, booked in the transactions that change it.

Importing this module connects it to `network.conversions.signals.status_changed`, so every
conversion approved (or reversed after approval) books the brand's entry in the transaction that
books the partner's; the payouts' traffic accrual calls `accrue_traffic` in its own transaction.
A reversal is a new negative entry, unbilled when booked: it is a credit on the brand's next invoice,
whether or not the revenue it takes back was invoiced already."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network import money
from network.billing.models import BrandEntryKind
from network.billing.tables import brand_entries
from network.clock import UTC, now_utc
from network.conversions import signals
from network.conversions.models import Conversion, ConversionStatus
from network.db import InsertMany, insert_new
from network.offers.models import Offer
from network.tracking.models import Click, ImpressionCount

_COLUMNS = (
    "brand_id", "currency", "kind", "amount_minor", "quantity", "idempotency_key", "conversion_id", "offer_id",
    "event_id", "partner_id", "memo", "created_at",
)  # fmt: skip
#: Entries, one or a batch's, each skipped when its key was booked before (on the driver: an entry is
#: booked for every approved postback, as the partner's commission is).
_ENTRIES = InsertMany(brand_entries, _COLUMNS, conflict=["idempotency_key"], returning=("id",))


def entry_row(
    *,
    brand_id: int,
    currency: str,
    kind: BrandEntryKind,
    amount_minor: int,
    key: str,
    at: dt.datetime,
    quantity: int = 1,
    **refs: Any,
) -> dict[str, Any]:
    """Return a brand_entries row (offer_id, event_id, partner_id, conversion_id and memo from `refs`)."""
    return {
        "brand_id": brand_id,
        "currency": money.check_currency(currency),
        "kind": BrandEntryKind(kind).value,
        "amount_minor": amount_minor,
        "quantity": quantity,
        "idempotency_key": key,
        "conversion_id": refs.get("conversion_id"),
        "offer_id": refs.get("offer_id"),
        "event_id": refs.get("event_id"),
        "partner_id": refs.get("partner_id"),
        "memo": refs.get("memo"),
        "created_at": at,
    }


def book(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert entry rows; return the ids of those booked (a key booked before books nothing)."""
    if session.new or session.dirty or session.deleted:
        session.flush()
    return [row[0] for row in _ENTRIES.run(session, rows)]


def _revenue(conversion: Any, at: dt.datetime) -> dict[str, Any]:
    """Return the revenue entry of an approved conversion (one per conversion, by its key)."""
    return entry_row(
        brand_id=conversion.brand_id, currency=conversion.currency, kind=BrandEntryKind.REVENUE,
        amount_minor=conversion.revenue_minor, key=f"revenue-{conversion.id}", at=at,
        conversion_id=conversion.id, offer_id=conversion.offer_id, event_id=conversion.event_id,
        partner_id=conversion.partner_id,
    )  # fmt: skip


def book_conversion(
    session: Session, *, conversion: Any, old_status: str | None, new_status: str, at: dt.datetime
) -> int | None:
    """Book what a conversion's status change means for its brand; return the entry id."""
    approved = ConversionStatus.APPROVED
    if new_status == approved and old_status != approved:
        if conversion.revenue_minor <= 0:
            return None
        booked = book(session, [_revenue(conversion, at)])
        return booked[0] if booked else None
    if new_status in (ConversionStatus.REVERSED, ConversionStatus.REJECTED) and old_status == approved:
        revenue = session.scalar(
            select(brand_entries.c.amount_minor).where(brand_entries.c.idempotency_key == f"revenue-{conversion.id}")
        )
        if revenue is None:
            return None
        row = entry_row(
            brand_id=conversion.brand_id, currency=conversion.currency, kind=BrandEntryKind.REVERSAL,
            amount_minor=-int(revenue), key=f"revenue-reversal-{conversion.id}", at=at,
            conversion_id=conversion.id, offer_id=conversion.offer_id, event_id=conversion.event_id,
            partner_id=conversion.partner_id, memo=f"conversion {conversion.id} {new_status}",
        )  # fmt: skip
        booked = book(session, [row])
        return booked[0] if booked else None
    return None


def _on_status_changed(
    _sender: Any, *, session: Session, conversion: Conversion, old_status: str | None, new_status: str,
    at: dt.datetime, **_: Any,
) -> None:  # fmt: skip
    """Book the brand's entry of a conversion's new status in the sender's transaction."""
    book_conversion(session, conversion=conversion, old_status=old_status, new_status=new_status, at=at)


def _on_many(_sender: Any, *, session: Session, changes: list[signals.Change], **_: Any) -> None:
    """Book the brand entries of many status changes: new approved revenue in one statement."""
    rows = []
    for change in changes:
        conversion = change.conversion
        if change.old_status is None and change.new_status == ConversionStatus.APPROVED:
            if conversion.revenue_minor > 0:
                rows.append(_revenue(conversion, change.at))
        else:
            book_conversion(
                session, conversion=conversion, old_status=change.old_status, new_status=change.new_status, at=change.at
            )
    # Their ids are not needed: in a batch's pipeline the INSERT rides with the statements after it.
    _ENTRIES.send(session, rows)


signals.connect_both(_on_status_changed, _on_many)


def accrue_traffic(
    session: Session, *, day: dt.date, at: dt.datetime | None = None, cpm_amount: Callable[[int, int], int]
) -> int:
    """Book one day's CPC and CPM revenue per offer and partner, once per (offer, partner, day); return how many.

    `cpm_amount(impressions, price_per_thousand)` is the payouts' rule, so both sides round alike."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + dt.timedelta(days=1)
    at = at or now_utc()
    clicks = session.execute(
        select(
            Click.offer_id, Click.partner_id, func.count(), Offer.click_revenue_minor, Offer.currency, Offer.brand_id
        )
        .join(Offer, Offer.id == Click.offer_id)
        .where(
            Click.created_at >= start,
            Click.created_at < end,
            Click.is_unique.is_(True),
            Click.is_bot.is_(False),
            Click.fallback_reason.is_(None),
            Offer.click_revenue_minor > 0,
        )
        .group_by(Click.offer_id, Click.partner_id, Offer.click_revenue_minor, Offer.currency, Offer.brand_id)
    ).all()
    impressions = session.execute(
        select(
            ImpressionCount.offer_id, ImpressionCount.partner_id, func.sum(ImpressionCount.count),
            Offer.impression_revenue_minor, Offer.currency, Offer.brand_id,
        )
        .join(Offer, Offer.id == ImpressionCount.offer_id)
        .where(ImpressionCount.day == day, Offer.impression_revenue_minor > 0)
        .group_by(
            ImpressionCount.offer_id, ImpressionCount.partner_id, Offer.impression_revenue_minor, Offer.currency,
            Offer.brand_id,
        )
    ).all()  # fmt: skip
    rows = []
    for offer_id, partner_id, count, price, currency, brand_id in clicks:
        rows.append(
            _accrual(BrandEntryKind.CPC, brand_id, offer_id, partner_id, currency, count * price, day, at, count)
        )
    for offer_id, partner_id, count, price, currency, brand_id in impressions:
        amount = cpm_amount(int(count or 0), price)
        if amount > 0:
            rows.append(_accrual(BrandEntryKind.CPM, brand_id, offer_id, partner_id, currency, amount, day, at, count))
    if not rows:
        return 0
    stmt = insert_new(session, brand_entries, keys=["idempotency_key"]).returning(brand_entries.c.id)
    return len(session.execute(stmt, rows).all())


def _accrual(
    kind: BrandEntryKind, brand_id: int, offer_id: int, partner_id: int, currency: str, amount: int,
    day: dt.date, at: dt.datetime, units: int,
) -> dict[str, Any]:  # fmt: skip
    unit = "clicks" if kind is BrandEntryKind.CPC else "impressions"
    return entry_row(
        brand_id=brand_id, currency=currency, kind=kind, amount_minor=int(amount), quantity=int(units),
        key=f"brand-{kind.value}-{offer_id}-{partner_id}-{day.isoformat()}", at=at, offer_id=offer_id,
        partner_id=partner_id, memo=f"{units} {unit} on {day.isoformat()}",
    )  # fmt: skip
