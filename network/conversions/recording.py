"""Recording new conversions: the one path, for a batch of plans (a batch of one when a postback is alone).

In the session's transaction, as if the plans were recorded one by one in order:

1. their clicks are read (rows, or records still in this process's buffer) and each plan is judged
   on every check but the caps (rules.judge);
2. their rows are inserted with INSERT ... ON CONFLICT DO NOTHING in dedupe key order (so two
   batches never wait on each other in a cycle): a row whose dedupe key is taken, before or by an
   earlier plan of the batch, returns nothing, and its plan answers the conversion holding the key
   as a duplicate (or 409: a txn_id sent again with another amount);
3. the new conversions every other check accepted take room in their offer's caps, in arrival
   order (offers.caps.take_room); one without room becomes rejected `cap_reached`;
4. each new conversion gets its history line and the status_changed signal (ledger, outbox), and
   each plan its postback log line (a 409's is the request's, written after its rollback).

The same statements run on SQLite and PostgreSQL. Who calls it ends the transaction: the request
(a postback recorded alone) or the group commit (groupcommit.py).

API: `record`, `Outcome`, `dedupe_key`, `holder`, `replay`, `creator`, `NEW_CONVERSIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import Integer, String, Table, bindparam, select, update
from sqlalchemy.orm import Session

from network.conversions import bindings, rules
from network.conversions.attribution import Plan, clicks
from network.conversions.intake import LOG_LINES, Answer, log_row
from network.conversions.models import Conversion
from network.conversions.signals import Change, send_many
from network.conversions.statuses import HISTORY_LINES, history_row
from network.db import InsertMany, Raw
from network.errors import Conflict
from network.offers import caps as cap_counters
from network.rollups import marks
from network.rollups.models import CONVERSIONS

#: A plan's outcome: its answer, or the 409 of a txn_id sent again with another amount.
Outcome = Answer | Conflict

CONVERSION_TABLE = cast(Table, Conversion.__table__)
#: The conversion row's columns, as `rules.judge` makes them.
CONVERSION_KEYS = (
    "offer_id", "event_id", "brand_id", "partner_id", "link_id", "click_id", "clicked_at", "txn_id", "status",
    "reason", "flags", "currency", "amount_minor", "payout_minor", "revenue_minor", "created_at", "hold_until",
    "status_changed_at", "attributed_by", "customer_id", "coupon", "evidence",
)  # fmt: skip
#: Inserts new conversions, one or a batch's: a row whose dedupe key is taken (before, or by an
#: earlier row of the same statement) is skipped and returns nothing.
NEW_CONVERSIONS = InsertMany(
    CONVERSION_TABLE, CONVERSION_KEYS, conflict=True, returning=("id", "offer_id", "event_id", "txn_id", "click_id")
)
_REJECT = (
    update(CONVERSION_TABLE)
    .where(CONVERSION_TABLE.c.id == bindparam("b_id"))
    .values(
        status="rejected",
        reason=bindparam("reason"),
        flags=[],
        hold_until=None,
        payout_minor=0,
        revenue_minor=0,
        evidence=None,
    )
)
_FIRST_COLUMNS = (
    CONVERSION_TABLE.c.id,
    CONVERSION_TABLE.c.status,
    CONVERSION_TABLE.c.reason,
    CONVERSION_TABLE.c.amount_minor,
    CONVERSION_TABLE.c.currency,
)


class _First(NamedTuple):
    """The conversion that holds a dedupe key, as a replay answers it."""

    id: int
    status: str
    reason: str | None
    amount_minor: int | None
    currency: str


#: The conversion that holds a dedupe key: by offer, event and txn_id, or by click and event.
#: Planned afresh each time: a plan PostgreSQL kept from when the table was nearly empty takes
#: ix_conversions_offer_created and reads all of the offer's conversions, not the key's unique index.
FIRST_BY_TXN = Raw(
    lambda _dialect: select(*_FIRST_COLUMNS).where(
        CONVERSION_TABLE.c.offer_id == bindparam("offer_id", type_=Integer),
        CONVERSION_TABLE.c.event_id == bindparam("event_id", type_=Integer),
        CONVERSION_TABLE.c.txn_id == bindparam("txn_id", type_=String),
    ),
    prepared=False,
)
FIRST_BY_CLICK = Raw(
    lambda _dialect: select(*_FIRST_COLUMNS).where(
        CONVERSION_TABLE.c.click_id == bindparam("click_id", type_=String),
        CONVERSION_TABLE.c.event_id == bindparam("event_id", type_=Integer),
        CONVERSION_TABLE.c.txn_id.is_(None),
    ),
    prepared=False,
)


def dedupe_key(values: Mapping[str, Any]) -> tuple[Any, ...]:
    """Return a conversion's dedupe key: by offer, event and txn_id, or by click and event."""
    if values["txn_id"] is not None:
        return ("t", values["offer_id"], values["event_id"], values["txn_id"])
    return ("c", values["click_id"], values["event_id"])


def holder(session: Session, values: Mapping[str, Any]) -> Any:
    """Return the conversion (id, status, reason, amount, currency) that holds a new row's dedupe key."""
    if values["txn_id"] is not None:
        params = {"offer_id": values["offer_id"], "event_id": values["event_id"], "txn_id": values["txn_id"]}
        (row,) = FIRST_BY_TXN.all(session, params)
    else:
        (row,) = FIRST_BY_CLICK.all(session, {"click_id": values["click_id"], "event_id": values["event_id"]})
    return _First(*row)


def replay(values: Mapping[str, Any], first: Any) -> tuple[Outcome, dict[str, Any]]:
    """Return the answer to a replay of `first` (the conversion holding the key), or the 409 of a
    txn_id sent again with another amount, and what the log line says of it."""
    fields = {"conversion_id": first.id, "status": first.status, "reason": first.reason, "duplicate": True}
    if values["txn_id"] is not None and (first.amount_minor, first.currency) != (
        values["amount_minor"],
        values["currency"],
    ):
        conflict = Conflict(
            f"txn_id {values['txn_id']!r} is already conversion {first.id} with another amount; it was not changed",
            code="txn_id_amount_conflict",
        )
        return conflict, fields
    return Answer(first.id, first.status, first.reason, duplicate=True), fields


def creator(source: str) -> str:
    """Return the history actor of a conversion a postback or a pixel created."""
    return "pixel" if source == "pixel" else "postback"


_NEW_CONVERSION = Conversion.__mapper__.class_manager.new_instance


def _inserted(conversion_id: int, values: Mapping[str, Any]) -> Conversion:
    """Return the conversion just inserted with `values`, known in full without reading it back.

    A transient object that the signal's receivers read and nothing writes; its attributes are set
    as loaded ones (without the ORM's per-attribute events, which cost more than the insert).
    """
    conversion = _NEW_CONVERSION()
    conversion.__dict__.update(values, id=conversion_id)
    return conversion


def _reject(session: Session, conversion: Conversion, reason: str) -> None:
    """Make a just-inserted conversion rejected (its caps had no room), in the database and on the object."""
    session.connection().execute(_REJECT, {"b_id": conversion.id, "reason": reason})
    conversion.status, conversion.reason, conversion.flags, conversion.hold_until = "rejected", reason, [], None
    conversion.payout_minor = conversion.revenue_minor = 0
    conversion.evidence = None


def record(session: Session, plans: Sequence[Plan]) -> list[tuple[Outcome, dict[str, Any]]]:
    """Record plans in the session's transaction, as if one by one in order.

    Return each plan's outcome and the fields of its trace (for the caller to apply once the
    transaction commits: a batch that fails leaves the traces as the requests made them).
    """
    found = clicks(session, plans)
    judged = [plan.judged or rules.judge(plan, found.get(plan.data.click_id or "")) for plan in plans]
    keys = [dedupe_key(values) for _facts, values in judged]
    conversions = _insert(session, [values for _facts, values in judged], keys)
    if conversions:
        marks.mark(session, CONVERSIONS, [conversion.created_at for conversion in conversions.values()])
    taken = bindings.take_turns(session, plans, conversions, _reject)
    _take_room(session, plans, conversions)
    bindings.settle(session, plans, conversions, taken)
    return _finish(session, plans, [values for _facts, values in judged], keys, conversions)


def _insert(session: Session, rows: Sequence[dict[str, Any]], keys: Sequence[tuple[Any, ...]]) -> dict[int, Conversion]:
    """Insert the rows in dedupe key order; return the new conversions by plan (the first plan of each free key)."""
    order = sorted(range(len(rows)), key=keys.__getitem__)
    inserted = {
        dedupe_key({"offer_id": offer_id, "event_id": event_id, "txn_id": txn_id, "click_id": click_id}): new_id
        for new_id, offer_id, event_id, txn_id, click_id in NEW_CONVERSIONS.run(session, [rows[i] for i in order])
    }
    conversions: dict[int, Conversion] = {}
    for i in order:
        new_id = inserted.pop(keys[i], None)
        if new_id is not None:
            conversions[i] = _inserted(new_id, rows[i])
    return conversions


def _take_room(session: Session, plans: Sequence[Plan], conversions: Mapping[int, Conversion]) -> None:
    """Take room in the caps for the accepted new conversions, in arrival order; reject those without."""
    capped = [i for i in sorted(conversions) if conversions[i].reason is None and plans[i].link.caps]
    asks = [
        cap_counters.Ask(plans[i].link.caps, conversions[i].partner_id, plans[i].now, conversions[i].payout_minor)
        for i in capped
    ]
    for i, room in zip(capped, cap_counters.take_room(session, asks), strict=True):
        if not room:
            _reject(session, conversions[i], "cap_reached")


def _finish(
    session: Session,
    plans: Sequence[Plan],
    rows: Sequence[dict[str, Any]],
    keys: Sequence[tuple[Any, ...]],
    conversions: Mapping[int, Conversion],
) -> list[tuple[Outcome, dict[str, Any]]]:
    """Write the new conversions' history lines, signals and every plan's log line; return the outcomes."""
    winners = {keys[i]: conversion for i, conversion in conversions.items()}
    results: list[tuple[Outcome, dict[str, Any]]] = []
    history: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    changes: list[Change] = []
    for i, plan in enumerate(plans):
        conversion = conversions.get(i)
        if conversion is not None:
            fields = {"conversion_id": conversion.id, "status": conversion.status, "reason": conversion.reason}
            actor = creator(plan.trace.source)
            history.append(
                history_row(conversion.id, None, conversion.status, conversion.reason, actor=actor, at=plan.now)
            )
            changes.append(Change(conversion, None, conversion.status, plan.now, conversion.reason))
            outcome: Outcome = Answer(conversion.id, conversion.status, conversion.reason)
        else:
            # The conversion holding the key: this batch's, or one read once per key.
            if keys[i] not in winners:
                winners[keys[i]] = holder(session, rows[i])
            outcome, fields = replay(rows[i], winners[keys[i]])
        if isinstance(outcome, Answer):
            lines.append({**log_row(plan.trace, at=plan.now), **fields})
        results.append((outcome, fields))
    send_many(session, changes)
    HISTORY_LINES.run(session, history)
    LOG_LINES.run(session, lines)
    return results
