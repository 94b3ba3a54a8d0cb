"""The append-only ledger: entries booked from conversion signals and by finance, balances as SQL sums
(traffic accrual books into it from accrual.py).

Importing this module connects the ledger to `network.conversions.signals.status_changed`, so
every conversion approved (or reversed after approval) books its entry in the same transaction."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, Unpack

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from network import money
from network.auth import Principal, Role, require
from network.billing import ledger as brand_ledger  # noqa: F401 - books the brand's entry beside the partner's
from network.clock import now_utc
from network.conversions import signals
from network.conversions.models import Conversion, ConversionStatus
from network.customers.signals import customer_changed
from network.db import InsertMany, paged, where_given
from network.errors import NotFound, ValidationError
from network.partners import service as partners
from network.payouts.models import AuditLog, EntryKind, LedgerEntry, Payout, PayoutItem
from network.payouts.tables import entries

#: Payout statuses whose entries are attached but not yet paid out.
_IN_FLIGHT = ("pending_approval", "on_hold", "approved", "processing")


# ---- writing -----------------------------------------------------------------------------------


class Entry(TypedDict):
    """A ledger entry to book: whose, in what, of what kind, how much, under which idempotency key."""

    partner_id: int
    currency: str
    kind: EntryKind
    amount_minor: int
    key: str
    #: Default: now.
    at: NotRequired[dt.datetime | None]
    conversion_id: NotRequired[int | None]
    offer_id: NotRequired[int | None]
    payout_id: NotRequired[int | None]
    memo: NotRequired[str | None]


def add_entry(session: Session, **entry: Unpack[Entry]) -> int | None:
    """Book one entry; return its id, or None when an entry with this key was booked before."""
    return _book(session, _entry_row(entry))


#: Entries, one or a batch's, each skipped when its key was booked before; on the driver (an entry is
#: booked for every approved postback).
_ENTRIES = InsertMany(
    entries,
    (
        "partner_id", "currency", "kind", "amount_minor", "idempotency_key", "created_at", "conversion_id",
        "offer_id", "payout_id", "memo",
    ),
    conflict=["idempotency_key"],
    returning=("id",),
)  # fmt: skip


def _book(session: Session, row: dict[str, Any]) -> int | None:
    """Insert an entry row; return its id, or None when an entry with its key was booked before."""
    if session.new or session.dirty or session.deleted:
        session.flush()  # the entry may reference rows still pending in the session (a new payout)
    booked = _ENTRIES.run(session, [row])
    return booked[0][0] if booked else None


def _entry_row(entry: Entry) -> dict[str, Any]:
    """Return the ledger_entries row of an entry (the currency checked, the time defaulting to now)."""
    return {
        "partner_id": entry["partner_id"],
        "currency": money.check_currency(entry["currency"]),
        "kind": EntryKind(entry["kind"]).value,
        "amount_minor": entry["amount_minor"],
        "idempotency_key": entry["key"],
        "created_at": entry.get("at") or now_utc(),
        "conversion_id": entry.get("conversion_id"),
        "offer_id": entry.get("offer_id"),
        "payout_id": entry.get("payout_id"),
        "memo": entry.get("memo"),
    }


def _commission(conversion: Conversion, at: dt.datetime) -> dict[str, Any]:
    """Return the commission entry of an approved conversion (one per conversion, by its key)."""
    return _entry_row(
        Entry(
            partner_id=conversion.partner_id, currency=conversion.currency, kind=EntryKind.COMMISSION,
            amount_minor=conversion.payout_minor, key=f"commission-{conversion.id}", at=at,
            conversion_id=conversion.id, offer_id=conversion.offer_id,
        )
    )  # fmt: skip


def book_conversion(
    session: Session, *, conversion: Conversion, old_status: str | None, new_status: str, at: dt.datetime
) -> int | None:
    """Book what a conversion's status change means for the partner's balance; return the entry id."""
    if new_status == ConversionStatus.APPROVED and old_status != ConversionStatus.APPROVED:
        if conversion.payout_minor <= 0:
            return None
        return _book(session, _commission(conversion, at))
    if new_status in (ConversionStatus.REVERSED, ConversionStatus.REJECTED) and old_status == ConversionStatus.APPROVED:
        commission = session.execute(
            select(LedgerEntry.id, LedgerEntry.amount_minor).where(
                LedgerEntry.idempotency_key == f"commission-{conversion.id}"
            )
        ).one_or_none()
        if commission is None:
            return None
        # Attached to a payout: the money is (or is about to be) with the partner, so it is
        # clawed back from the next payout rather than silently dropped from this one.
        attached_to = session.scalar(select(PayoutItem.payout_id).where(PayoutItem.entry_id == commission.id))
        return add_entry(
            session,
            partner_id=conversion.partner_id,
            currency=conversion.currency,
            kind=EntryKind.CLAWBACK if attached_to is not None else EntryKind.REVERSAL,
            amount_minor=-commission.amount_minor,
            key=f"reversal-{conversion.id}",
            at=at,
            conversion_id=conversion.id,
            offer_id=conversion.offer_id,
            memo=f"conversion {new_status}" + (f" after payout {attached_to}" if attached_to is not None else ""),
        )
    return None


def _on_status_changed(
    sender: Any,
    *,
    session: Session,
    conversion: Conversion,
    old_status: str | None,
    new_status: str,
    at: dt.datetime,
    **_: Any,
) -> None:
    """Book the ledger entry of a conversion's new status in the sender's transaction."""
    book_conversion(session, conversion=conversion, old_status=old_status, new_status=new_status, at=at)


def _on_many(_sender: Any, *, session: Session, changes: list[signals.Change], **_: Any) -> None:
    """Book the entries of many status changes: new approved commissions in one statement."""
    rows = []
    for change in changes:
        conversion = change.conversion
        if change.old_status is None and change.new_status == ConversionStatus.APPROVED:
            if conversion.payout_minor > 0:
                rows.append(_commission(conversion, change.at))
        else:
            book_conversion(
                session, conversion=conversion, old_status=change.old_status, new_status=change.new_status, at=change.at
            )
    # Their ids are not needed: in a batch's pipeline the INSERT rides with the statements after it.
    _ENTRIES.send(session, rows)


signals.connect_both(_on_status_changed, _on_many)


def add_adjustment(
    session: Session, principal: Principal, partner_id: int, *, currency: str, amount: str, memo: str
) -> LedgerEntry:
    """Book a manual correction (finance, admin): a signed amount in major units with a reason."""
    require(principal, Role.FINANCE, Role.ADMIN)
    partners.get_partner(session, principal, partner_id)
    try:
        minor = money.parse_amount(amount, currency, allow_negative=True)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc
    if minor == 0:
        raise ValidationError("amount: an adjustment must not be zero", field="amount")
    at = now_utc()
    entry_id = add_entry(
        session,
        partner_id=partner_id,
        currency=currency,
        kind=EntryKind.ADJUSTMENT,
        amount_minor=minor,
        key=f"adjustment-{secrets.token_hex(12)}",
        at=at,
        memo=memo,
    )
    assert entry_id is not None
    audit(
        session,
        actor=principal.label,
        action="ledger.adjustment",
        object_type="partner",
        object_id=partner_id,
        details={"entry_id": entry_id, "currency": currency, "amount": amount, "memo": memo},
        at=at,
    )
    entry = session.get(LedgerEntry, entry_id)
    assert entry is not None
    return entry


def audit(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: int | str,
    details: Mapping[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Record a money-moving action in the audit log."""
    session.add(
        AuditLog(
            at=at or now_utc(),
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=str(object_id),
            details=dict(details or {}),
        )
    )


# ---- reading -----------------------------------------------------------------------------------


def _visible_partner(session: Session, principal: Principal, partner_id: int) -> None:
    """Raise NotFound unless the principal may see this partner's money (itself, finance, admin)."""
    if principal.role is Role.BRAND:
        # A brand never sees partners' money; 404, so existence is not leaked either.
        raise NotFound("partner not found")
    partners.get_partner(session, principal, partner_id)


def balances(session: Session, principal: Principal, partner_id: int) -> list[dict[str, Any]]:
    """Return the partner's pending, available, in-payout and paid money per currency (SQL sums)."""
    _visible_partner(session, principal, partner_id)
    return balance_rows(session, partner_id)


def balance_rows(session: Session, partner_id: int) -> list[dict[str, Any]]:
    """Return the partner's pending, available, in_payout, paid and balance per currency, summed in SQL."""
    # pending: pending conversions; available: entries no payout holds; in_payout: held by unpaid
    # payouts; paid: sent, net of reversed transfers; balance: the sum of all entries.
    item = PayoutItem.__table__.alias("live_item")
    entry = LedgerEntry.__table__
    payout = Payout.__table__
    attached = item.c.entry_id.is_not(None)
    ledger = session.execute(
        select(
            entry.c.currency,
            func.sum(
                case((and_(entry.c.kind != EntryKind.PAYOUT.value, ~attached), entry.c.amount_minor), else_=0)
            ).label("available"),
            func.sum(case((and_(attached, payout.c.status.in_(_IN_FLIGHT)), entry.c.amount_minor), else_=0)).label(
                "in_payout"
            ),
            func.sum(
                case(
                    (
                        entry.c.kind.in_((EntryKind.PAYOUT.value, EntryKind.PAYOUT_REVERSAL.value)),
                        -entry.c.amount_minor,
                    ),
                    else_=0,
                )
            ).label("paid"),
            func.sum(entry.c.amount_minor).label("balance"),
        )
        .select_from(entry)
        .outerjoin(item, item.c.entry_id == entry.c.id)
        .outerjoin(payout, payout.c.id == item.c.payout_id)
        .where(entry.c.partner_id == partner_id)
        .group_by(entry.c.currency)
    ).all()
    pending = dict(
        session.execute(
            select(Conversion.currency, func.sum(Conversion.payout_minor))
            .where(Conversion.partner_id == partner_id, Conversion.status == ConversionStatus.PENDING.value)
            .group_by(Conversion.currency)
        ).all()
    )
    rows: dict[str, dict[str, Any]] = {}
    for currency, available, in_payout, paid, balance in ledger:
        rows[currency] = {
            "currency": currency,
            "pending": int(pending.get(currency) or 0),
            "available": int(available or 0),
            "in_payout": int(in_payout or 0),
            "paid": int(paid or 0),
            "balance": int(balance or 0),
        }
    for currency, amount in pending.items():
        rows.setdefault(
            currency,
            {
                "currency": currency,
                "pending": int(amount or 0),
                "available": 0,
                "in_payout": 0,
                "paid": 0,
                "balance": 0,
            },
        )
    return [rows[c] for c in sorted(rows)]


def list_entries(
    session: Session,
    principal: Principal,
    partner_id: int,
    *,
    limit: int = 100,
    after: int | None = None,
    currency: str | None = None,
    kind: str | None = None,
) -> list[LedgerEntry]:
    """Return a page of the partner's ledger, oldest first, after the entry id `after`."""
    _visible_partner(session, principal, partner_id)
    query = where_given(
        select(LedgerEntry).where(LedgerEntry.partner_id == partner_id),
        (LedgerEntry.currency, currency),
        (LedgerEntry.kind, kind),
    )
    return list(session.scalars(paged(query, LedgerEntry.id, limit=limit, after=after)))


def _on_customer_changed(_sender: Any, *, session: Session, actor: str, action: str, customer_id: int,
                         details: dict[str, Any], at: dt.datetime) -> None:  # fmt: skip
    # A customer moved or unbound moves the commissions of its later conversions: audited like money.
    audit(session, actor=actor, action=action, object_type="customer", object_id=customer_id, details=details, at=at)


customer_changed.connect(_on_customer_changed, weak=False)
