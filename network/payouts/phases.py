"""The database side of settlement (RELIABILITY.md): phase 1 leases approved payouts to a settler
with their idempotency keys, phase 3 records the gateway's outcomes. network/payouts/settlement.py
makes the gateway call between them and commits each phase; nothing here commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, bindparam, cast, insert, literal, literal_column, or_, select, text, update
from sqlalchemy.orm import Session

from network import metrics
from network.payouts import attachment, ledger, rules
from network.payouts.gateway import TransferResult
from network.payouts.models import EntryKind, PayoutRun, PayoutStatus
from network.payouts.tables import audit_log, chunks, entries, json_pair, partners, payouts

_PROCESSING = PayoutStatus.PROCESSING.value


@dataclass(frozen=True)
class SendOrder:
    """What a settler needs to send one payout, exactly as committed in phase 1."""

    payout_id: int
    partner_id: int
    currency: str
    amount_minor: int
    destination: str | None
    idempotency_key: str
    transfer_group: str
    key_first_used_at: dt.datetime | None


_ORDER_COLUMNS = (
    payouts.c.id,
    payouts.c.partner_id,
    payouts.c.currency,
    payouts.c.amount_minor,
    payouts.c.destination,
    payouts.c.idempotency_key,
    payouts.c.transfer_group,
    payouts.c.key_first_used_at,
)


def _orders(rows: Iterable[Any]) -> list[SendOrder]:
    return sorted(
        (
            SendOrder(
                payout_id=r.id,
                partner_id=r.partner_id,
                currency=r.currency,
                amount_minor=r.amount_minor,
                destination=r.destination,
                idempotency_key=r.idempotency_key,
                transfer_group=r.transfer_group,
                key_first_used_at=r.key_first_used_at,
            )
            for r in rows
        ),
        key=lambda o: o.payout_id,
    )


def _lease_ran_out(now: dt.datetime) -> Any:
    """Return the condition of a processing payout no settler holds any longer."""
    return and_(
        payouts.c.status == _PROCESSING,
        or_(payouts.c.leased_until.is_(None), payouts.c.leased_until < now),
    )


def has_due(session: Session, *, now: dt.datetime) -> tuple[bool, bool]:
    """Say whether any payout waits to be sent, and whether any processing one waits for recovery."""
    approved = session.scalar(select(payouts.c.id).where(payouts.c.status == PayoutStatus.APPROVED.value).limit(1))
    stuck = session.scalar(select(payouts.c.id).where(_lease_ran_out(now)).limit(1))
    return approved is not None, stuck is not None


def lease_approved(
    session: Session, *, gateway: str, actor: str, run_id: int | None, limit: int, now: dt.datetime
) -> list[SendOrder]:
    """Phase 1: move up to `limit` approved payouts to processing with key, destination and lease."""
    # The caller commits this before any gateway call: the intent is recorded first.
    approved = payouts.c.status == PayoutStatus.APPROVED.value
    ids = list(session.scalars(select(payouts.c.id).where(approved).order_by(payouts.c.id).limit(limit)))
    if not ids:
        return []
    key = literal_column("'payout-'").op("||")(cast(payouts.c.id, String))
    if gateway == "stripe":
        destination: Any = (
            select(partners.c.stripe_account_id).where(partners.c.id == payouts.c.partner_id).scalar_subquery()
        )
    else:
        destination = literal_column("'partner-'").op("||")(cast(payouts.c.partner_id, String))
    rows = session.execute(
        update(payouts)
        .where(payouts.c.id.in_(ids), approved)
        .values(
            status=_PROCESSING,
            gateway=gateway,
            destination=destination,
            idempotency_key=key,
            transfer_group=key,
            key_first_used_at=now,
            leased_until=now + rules.LEASE,
            attempts=payouts.c.attempts + 1,
            sent_at=now,
            batch_id=run_id,
        )
        .returning(*_ORDER_COLUMNS)
    ).all()
    orders = _orders(rows)
    audit_many(session, actor, "payout.sent", [o.payout_id for o in orders], now, {"gateway": gateway})
    return orders


def lease_stuck(session: Session, *, now: dt.datetime, limit: int) -> list[SendOrder]:
    """Take over processing payouts whose lease ran out (a settler died or got no answer)."""
    stale = _lease_ran_out(now)
    ids = list(session.scalars(select(payouts.c.id).where(stale).order_by(payouts.c.id).limit(limit)))
    if not ids:
        return []
    rows = session.execute(
        update(payouts)
        .where(payouts.c.id.in_(ids), stale)
        .values(leased_until=now + rules.LEASE, attempts=payouts.c.attempts + 1)
        .returning(*_ORDER_COLUMNS)
    ).all()
    return _orders(rows)


def renew_key(session: Session, order: SendOrder, *, now: dt.datetime) -> bool:
    """Start a new key window before re-sending a payout the gateway has no transfer for."""
    changed = session.execute(
        update(payouts)
        .where(payouts.c.id == order.payout_id, payouts.c.status == _PROCESSING)
        .values(key_first_used_at=now, leased_until=now + rules.LEASE)
    ).rowcount  # type: ignore[attr-defined]
    return bool(changed == 1)


def record_outcomes(
    session: Session,
    results: Sequence[tuple[SendOrder, TransferResult]],
    *,
    actor: str,
    run: PayoutRun | None,
    now: dt.datetime,
) -> dict[str, list[int]]:
    """Phase 3: record each gateway outcome by a conditional UPDATE from processing; return ids by outcome."""
    # Paid ones get their payout ledger entry, failed ones release their entries, unknown ones
    # stay processing under their key for recovery.
    done: dict[str, list[int]] = {
        "paid": _record_paid(session, {o.payout_id: r for o, r in results if r.outcome == "paid"}, actor, now),
        "failed": [],
        "unknown": [],
    }
    for order, result in results:
        if result.outcome == "failed" and _record_failed(session, order, result, actor, now):
            done["failed"].append(order.payout_id)
        elif result.outcome == "unknown":
            _record_unknown(session, order, result, actor, now)
            done["unknown"].append(order.payout_id)
    if run is not None:
        run.paid += len(done["paid"])
        run.failed += len(done["failed"])
        run.unknown += len(done["unknown"])
    metrics.payout_outcomes(done)
    return done


def _record_paid(session: Session, paid: dict[int, TransferResult], actor: str, now: dt.datetime) -> list[int]:
    """Mark the paid payouts that are still processing paid, with their debit entry; return their ids."""
    won_all: list[int] = []
    for chunk in chunks(sorted(paid)):
        # One statement per chunk: status, reference and time, only where still processing. Plain
        # SQL: compiling a VALUES construct of a thousand rows costs more than running it.
        rows = ", ".join(f"(:id{i}, :ref{i})" for i in range(len(chunk)))
        params: dict[str, Any] = {"now": now}
        for i, pid in enumerate(chunk):
            params[f"id{i}"], params[f"ref{i}"] = pid, paid[pid].reference
        statement = text(
            f"WITH outcome (id, reference) AS (VALUES {rows}) "  # noqa: S608 - placeholders only
            "UPDATE payouts SET status = 'paid', reference = outcome.reference, paid_at = :now,"
            " leased_until = NULL, last_error = NULL FROM outcome"
            " WHERE payouts.id = outcome.id AND payouts.status = 'processing' RETURNING payouts.id"
        ).bindparams(bindparam("now", type_=payouts.c.paid_at.type))
        won = list(session.scalars(statement, params))
        if not won:
            continue
        # The payout entry's key is the payout's: only the one transition to paid can write it.
        session.execute(
            insert(entries).from_select(
                [
                    "partner_id",
                    "currency",
                    "kind",
                    "amount_minor",
                    "idempotency_key",
                    "payout_id",
                    "memo",
                    "created_at",
                ],
                select(
                    payouts.c.partner_id,
                    payouts.c.currency,
                    literal(EntryKind.PAYOUT.value),
                    -payouts.c.amount_minor,
                    payouts.c.idempotency_key,
                    payouts.c.id,
                    literal_column("'transfer '").op("||")(payouts.c.reference),
                    literal(now, type_=entries.c.created_at.type),
                ).where(payouts.c.id.in_(won)),
            )
        )
        audit_many(session, actor, "payout.paid", won, now, json_pair("reference", payouts.c.reference))
        won_all.extend(won)
    return won_all


def _record_failed(session: Session, order: SendOrder, result: TransferResult, actor: str, now: dt.datetime) -> bool:
    """Mark a payout failed (its entries return to the balance) if it is still processing; say whether it was."""
    changed = session.execute(
        update(payouts)
        .where(payouts.c.id == order.payout_id, payouts.c.status == _PROCESSING)
        .values(
            status=PayoutStatus.FAILED.value,
            failed_at=now,
            failure_reason=(result.reason or "refused by the gateway")[:300],
            leased_until=None,
        )
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        return False
    attachment.release(session, order.payout_id, now)
    ledger.audit(
        session, actor=actor, action="payout.failed", **_payout(order), details={"reason": result.reason}, at=now
    )
    return True


def _record_unknown(session: Session, order: SendOrder, result: TransferResult, actor: str, now: dt.datetime) -> None:
    """Keep a payout processing under its key: recovery retries the very same request after the lease."""
    session.execute(
        update(payouts)
        .where(payouts.c.id == order.payout_id, payouts.c.status == _PROCESSING)
        .values(last_error=(result.reason or "outcome unknown")[:300])
    )
    details = {"reason": result.reason, "idempotency_key": order.idempotency_key}
    ledger.audit(session, actor=actor, action="payout.unknown", **_payout(order), details=details, at=now)


def _payout(order: SendOrder) -> dict[str, Any]:
    """Return the audit log's object of an order: its payout."""
    return {"object_type": "payout", "object_id": order.payout_id}


def audit_many(
    session: Session, actor: str, action: str, payout_ids: Sequence[int], now: dt.datetime, details: Any
) -> None:
    """Audit an action on many payouts with one INSERT ... SELECT per chunk (settlement writes thousands).

    `details` is a dict, or an SQL expression over `payouts` giving each row's own."""
    if not payout_ids:
        return
    if isinstance(details, dict):
        details = literal(details, type_=audit_log.c.details.type)
    for chunk in chunks(list(payout_ids)):
        session.execute(
            insert(audit_log).from_select(
                ["at", "actor", "action", "object_type", "object_id", "details"],
                select(
                    literal(now, type_=audit_log.c.at.type),
                    literal(actor),
                    literal(action),
                    literal("payout"),
                    cast(payouts.c.id, String),
                    details,
                ).where(payouts.c.id.in_(chunk)),
            )
        )


def paid_in_batch(session: Session, run_id: int) -> Any:
    """Yield the rows of the manual export for the payouts a run paid, streamed (flat memory)."""
    return session.execute(
        select(
            payouts.c.id,
            payouts.c.partner_id,
            partners.c.name,
            partners.c.email,
            payouts.c.currency,
            payouts.c.amount_minor,
            payouts.c.entry_count,
            payouts.c.reference,
            payouts.c.approved_by,
            payouts.c.paid_at,
        )
        .join(partners, partners.c.id == payouts.c.partner_id)
        .where(payouts.c.batch_id == run_id, payouts.c.status == PayoutStatus.PAID.value)
        .order_by(payouts.c.id)
        .execution_options(yield_per=2000)
    )
