"""Status changes of conversions: by their brand or admin, by a brand's postback, and by the hold job.

Every change is a conditional UPDATE naming the status it expects, then a history line and the
status_changed signal (the ledger and the outbox react in the same transaction).

API: `transition` (move one conversion if its stored status allows), `change_status` (the API's
approve/reject/reverse), `undo` (a brand's `status=reversed|rejected` postback), `record_change`,
`history_row` and `HISTORY_LINES` (a change's history line and signal).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Table, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.config import Settings
from network.conversions import rules
from network.conversions.attribution import attribute
from network.conversions.context import ContextCache
from network.conversions.intake import Answer, Params, Received, Trace, authenticated_brand
from network.conversions.models import Conversion, ConversionHistory
from network.conversions.reads import get_conversion
from network.conversions.signals import status_changed
from network.db import InsertMany, where_given
from network.errors import Conflict, ValidationError
from network.offers.models import Offer, OfferEvent
from network.rollups import marks
from network.rollups.models import CONVERSIONS

#: History lines, one or a batch's, as `history_row` makes them.
HISTORY_LINES = InsertMany(
    cast(Table, ConversionHistory.__table__), ("conversion_id", "at", "old_status", "new_status", "reason", "actor")
)


def record_change(
    session: Session,
    conversion: Conversion,
    old: str | None,
    new: str,
    reason: str | None,
    *,
    actor: str,
    at: dt.datetime,
) -> None:
    """Write the history line, mark the conversion's hour for the rollups, and tell the ledger and the outbox."""
    HISTORY_LINES.run(session, [history_row(conversion.id, old, new, reason, actor=actor, at=at)])
    marks.mark(session, CONVERSIONS, [conversion.created_at])
    status_changed.send(session=session, conversion=conversion, old_status=old, new_status=new, at=at, reason=reason)


def history_row(
    conversion_id: int, old: str | None, new: str, reason: str | None, *, actor: str, at: dt.datetime
) -> dict[str, Any]:
    """Return a conversion_history row: who moved the conversion from `old` to `new`, when and why."""
    return {"conversion_id": conversion_id, "at": at, "old_status": old, "new_status": new, "reason": reason,
            "actor": actor}  # fmt: skip


def transition(
    session: Session, conversion: Conversion, target: str, reason: str | None, *, actor: str, at: dt.datetime,
    due_by: dt.datetime | None = None,
) -> bool:  # fmt: skip
    """Move a conversion to `target` if its status (as stored now) allows it; return whether it moved.

    The UPDATE names the status it expects, so the history and the signal always carry the true
    old status (the ledger treats approved -> rejected and pending -> rejected differently).
    """
    sources = rules.TRANSITIONS[target]
    values: dict[str, Any] = {"status": target, "status_changed_at": at, "reason": reason, "hold_until": None}
    expected = conversion.status
    # A concurrent change may move it between our read and our UPDATE; look again, a few times.
    for _attempt in range(3):
        if expected not in sources:
            return False
        condition = (Conversion.id == conversion.id) & (Conversion.status == expected)
        if due_by is not None:
            condition &= Conversion.hold_until.is_not(None) & (Conversion.hold_until <= due_by)
        result = session.execute(
            update(Conversion).where(condition).values(**values), execution_options={"synchronize_session": False}
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            break
        session.refresh(conversion)
        if due_by is not None:
            return False
        expected = conversion.status
    else:
        return False
    for name, value in values.items():
        # What the UPDATE wrote, without marking the object dirty (no second UPDATE at flush).
        set_committed_value(conversion, name, value)
    record_change(session, conversion, expected, target, reason, actor=actor, at=at)
    return True


def change_status(
    session: Session, principal: Principal, conversion_id: int, *, status: str, reason: str | None, now: dt.datetime
) -> Conversion:
    """Approve, reject or reverse a conversion (its brand, admin); 409 when its status does not allow it."""
    require(principal, Role.ADMIN, Role.BRAND)
    conversion = get_conversion(session, principal, conversion_id)
    if status not in rules.TRANSITIONS:
        raise ValidationError("status must be approved, rejected or reversed", field="status")
    if conversion.status == status:
        return conversion  # asked twice: already done
    if status == "approved" and principal.role is Role.BRAND and _held_for_credit(session, conversion):
        # Its partner's commission would be payable while the brand's own bill is not paid.
        raise Conflict("held until your account is back under its credit limit", code="over_credit")
    if not rules.can_transition(conversion.status, status) or not transition(
        session, conversion, status, reason, actor=principal.label, at=now
    ):
        raise Conflict(f"a {conversion.status} conversion cannot become {status}", code="invalid_transition")
    return conversion


def _held_for_credit(session: Session, conversion: Conversion) -> bool:
    """Return whether a conversion is held for its brand's credit and the brand is still over its limit."""
    return "over_credit" in (conversion.flags or ()) and bool(
        session.scalar(select(Brand.credit_hold).where(Brand.id == conversion.brand_id))
    )


def undo(
    session: Session,
    *,
    settings: Settings,
    contexts: ContextCache | None,
    received: Received,
    data: Params,
    trace: Trace,
    now: dt.datetime,
) -> Answer:
    """Reverse or reject an earlier conversion named by txn_id, among the authenticated brand's offers only."""
    if data.txn_id is None:
        raise ValidationError("txn_id is required with status", field="txn_id")
    found = None
    if data.click_id is not None and data.offer_id is None and data.token is None:
        found = attribute(session, settings, contexts, data.click_id, None)  # a signature alone: the click's brand
    brand_id = authenticated_brand(session, received, data, found.link if found else None, now)
    trace.brand_id = brand_id

    named = _named(session, brand_id, data)
    if not named:
        trace.reason = "unknown_txn_id"
        return Answer(None, None, "unknown_txn_id")
    if len(named) > 1:
        raise ValidationError("txn_id names several conversions; send event or offer_id too", field="txn_id")
    conversion = named[0]
    trace.offer_id = conversion.offer_id
    assert data.status is not None
    target = rules.undo_target(conversion.status, data.status)
    if target is not None:
        reason = data.reason or f"{data.status} by brand postback"
        if not transition(session, conversion, target, reason, actor="postback", at=now):
            target = None  # a concurrent change won; answer what it left
    trace.conversion_id, trace.status, trace.reason = conversion.id, conversion.status, conversion.reason
    trace.duplicate = target is None
    return Answer(conversion.id, conversion.status, conversion.reason, duplicate=target is None)


def _named(session: Session, brand_id: int, data: Params) -> list[Conversion]:
    """Return (up to two of) the brand's conversions an undo's txn_id names, narrowed by what else it sent.

    On a first-click offer a conversion holds the visitor's earliest click, not always the click id
    the brand sent: there the click id does not narrow.
    """
    query = where_given(
        select(Conversion).where(Conversion.brand_id == brand_id, Conversion.txn_id == data.txn_id),
        (Conversion.offer_id, data.offer_id),
    )
    if data.click_id is not None:
        first_click = select(Offer.id).where(Offer.attribution == "first_click")
        query = query.where(or_(Conversion.click_id == data.click_id, Conversion.offer_id.in_(first_click)))
    if data.event is not None:
        query = query.join(OfferEvent, OfferEvent.id == Conversion.event_id).where(OfferEvent.key == data.event)
    return list(session.scalars(query.limit(2)).all())
