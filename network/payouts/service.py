"""Payouts: building them from the ledger in SQL, finance's decisions, the database side of each
settlement phase, Stripe webhooks and onboarding. Nothing here commits or calls a gateway inside a
transaction it owns: network/payouts/settlement.py drives the phases and their commits."""

from __future__ import annotations

import datetime as dt
import logging
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    Table,
    and_,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    update,
    values,
)
from sqlalchemy.orm import Session

from network import money
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.config import Settings
from network.db import paged, where_given
from network.errors import Conflict, DomainError, Forbidden, NotFound
from network.offers.models import Offer
from network.partners import service as partners
from network.partners.models import Partner
from network.payouts import ledger, rules
from network.payouts.gateway import GatewayError, GatewayUnsupported, PayoutGateway, TransferResult
from network.payouts.models import (
    AuditLog,
    EntryKind,
    LedgerEntry,
    Payout,
    PayoutItem,
    PayoutItemRelease,
    PayoutRun,
    PayoutStatus,
    StripeEvent,
)

log = logging.getLogger(__name__)

# Core tables: bulk statements here bypass the ORM unit of work on purpose (SQL, not objects).
_P = typing.cast(Table, Payout.__table__)
_E = typing.cast(Table, LedgerEntry.__table__)
_I = typing.cast(Table, PayoutItem.__table__)
_RELEASES = typing.cast(Table, PayoutItemRelease.__table__)
_PARTNERS = typing.cast(Table, Partner.__table__)
_EVENTS = typing.cast(Table, StripeEvent.__table__)
_AUDIT = typing.cast(Table, AuditLog.__table__)
#: Arbitrary, fixed: the PostgreSQL advisory lock that lets one payout build run at a time.
BUILD_LOCK = 0x5041594F  # "PAYO"
_CHUNK = 1000


class GatewayUnavailable(DomainError):
    """The payment provider could not be reached or refused the request."""

    status = 502
    code = "gateway_error"


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _finance(principal: Principal) -> None:
    require(principal, Role.FINANCE, Role.ADMIN)


# ---- build ---------------------------------------------------------------------------------------


def start_run(session: Session, *, actor: str, kind: str, gateway: str | None) -> PayoutRun:
    """Record the start of a payout run (its id names the payouts it builds and the batch it pays)."""
    run = PayoutRun(actor=actor, kind=kind, gateway=gateway, started_at=now_utc())
    session.add(run)
    session.flush()
    return run


def _live_item_exists() -> Any:
    return select(literal(1)).where(_I.c.entry_id == _E.c.id).correlate(_E).exists()


def _partner_thresholds(session: Session) -> dict[int, str]:
    """Return the partners whose threshold overrides the others, with their threshold."""
    rows = session.execute(
        select(Partner.id, Partner.payout_min_amount).where(
            Partner.payout_min_amount.is_not(None), Partner.payout_min_amount != ""
        )
    ).all()
    return {partner_id: amount for partner_id, amount in rows if amount}


def _offer_thresholds(session: Session) -> Any:
    """Return the offers that set a threshold (id, minor units) as a subquery, or None when none does."""
    query = select(Offer.id, Offer.payout_min_minor).where(Offer.payout_min_minor.is_not(None))
    if session.scalar(query.limit(1)) is None:
        return None  # the usual case: the ledger is summed without a join
    return query.subquery("offer_minimum")


def _with_offers(offer_minimum: Any) -> tuple[Any, Any]:
    """Return the entries joined to their offers' thresholds, and the highest threshold of a group."""
    if offer_minimum is None:
        return _E, cast(null(), BigInteger)
    source = _E.outerjoin(offer_minimum, offer_minimum.c.id == _E.c.offer_id)
    return source, func.max(offer_minimum.c.payout_min_minor)


def build_payouts(
    session: Session, principal: Principal, *, settings: Settings, run: PayoutRun, now: dt.datetime | None = None
) -> list[int]:
    """Build a pending_approval payout per partner and currency at its threshold, claiming its entries; return ids."""
    _finance(principal)
    now = now or now_utc()
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        # One build at a time; SQLite's BEGIN IMMEDIATE already serializes writers.
        session.execute(select(func.pg_advisory_xact_lock(BUILD_LOCK)))
        # Hash the whole ledger against the live claims in memory rather than in batches on disk.
        saved = session.execute(text("SELECT current_setting('work_mem'), current_setting('enable_nestloop')")).one()
        session.execute(text("SELECT set_config('work_mem', '64MB', true)"))
    unclaimed = and_(_E.c.kind != EntryKind.PAYOUT.value, ~_live_item_exists())
    overrides = _partner_thresholds(session)
    offer_minimum = _offer_thresholds(session)
    source, offers = _with_offers(offer_minimum)
    cache: dict[tuple[int, str, int | None], int] = {}

    def threshold(partner_id: int, currency: str, offers: int | None) -> int:
        amount = overrides.get(partner_id)
        if (partner_id, currency, offers) not in cache:
            cache[(partner_id, currency, offers)] = rules.payout_threshold(
                currency, setting=settings.payout_min_amount, partner=amount, offers=offers
            )
        return cache[(partner_id, currency, offers)]

    # Partners on no threshold of their own: sum, compare and create their payouts in one statement
    # (rules.payout_threshold in SQL: the offers' highest, else the setting's per currency).
    total = func.sum(_E.c.amount_minor)
    sums = (
        select(_E.c.partner_id, _E.c.currency, total.label("amount"), func.count().label("n"), offers.label("offers"))
        .select_from(source)
        .where(unclaimed)
        .group_by(_E.c.partner_id, _E.c.currency)
        .having(total > 0)
        .cte("sums")
    )
    minimum = (
        values(column("currency", String(3)), column("minor", BigInteger), name="minimum")
        .data([(currency, threshold(0, currency, None)) for currency in sorted(money.CURRENCIES)])
        .cte("minimum")
    )
    columns = ["partner_id", "currency", "amount_minor", "entry_count", "status", "run_id", "created_at", "attempts"]
    constants = (
        literal(PayoutStatus.PENDING_APPROVAL.value),
        literal(run.id),
        literal(now, type_=_P.c.created_at.type),
        literal(0),
    )
    session.execute(
        insert(_P).from_select(
            columns,
            select(sums.c.partner_id, sums.c.currency, sums.c.amount, sums.c.n, *constants)
            .select_from(
                sums.join(minimum, minimum.c.currency == sums.c.currency).join(
                    _PARTNERS, _PARTNERS.c.id == sums.c.partner_id
                )
            )
            .where(
                sums.c.amount >= func.coalesce(sums.c.offers, minimum.c.minor),
                or_(_PARTNERS.c.payout_min_amount.is_(None), _PARTNERS.c.payout_min_amount == ""),
            )
            .order_by(sums.c.partner_id, sums.c.currency),
        )
    )
    # Partners with a threshold of their own (few): the same, compared here.
    for chunk in _chunks(sorted(overrides)):
        groups = session.execute(
            select(_E.c.partner_id, _E.c.currency, total, func.count(), offers)
            .select_from(source)
            .where(unclaimed, _E.c.partner_id.in_(chunk))
            .group_by(_E.c.partner_id, _E.c.currency)
            .having(total > 0)
            .order_by(_E.c.partner_id, _E.c.currency)
        ).all()
        rows = [
            dict(zip(columns, (partner_id, currency, int(amount), int(count)), strict=False))
            | {"status": PayoutStatus.PENDING_APPROVAL.value, "run_id": run.id, "created_at": now, "attempts": 0}
            for partner_id, currency, amount, count, most in groups
            if amount >= threshold(partner_id, currency, most)
        ]
        if rows:
            session.execute(insert(_P), rows)
    expected = session.scalar(select(func.coalesce(func.sum(_P.c.entry_count), 0)).where(_P.c.run_id == run.id))
    if postgres and expected:
        # The claim reads payout_items while it writes them: with a nested loop the planner may
        # pick for a small table, each entry would rescan every row inserted so far (quadratic).
        # Tell it how many payouts there are, and make it hash.
        session.execute(text("ANALYZE payouts"))
        session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    claimed = _claim(session, run.id, unclaimed) if expected else 0
    if postgres:
        session.execute(
            text("SELECT set_config('work_mem', :work_mem, true), set_config('enable_nestloop', :nestloop, true)"),
            {"work_mem": saved[0], "nestloop": saved[1]},
        )
    if not expected:
        return []
    if claimed != expected:
        # Entries committed (or released) between the sum and the claim joined the payouts:
        # make each amount its entries again, and drop a payout that fell below its threshold.
        _reconcile(session, run.id, threshold, offer_minimum)
    ids = list(session.scalars(select(_P.c.id).where(_P.c.run_id == run.id).order_by(_P.c.id)))
    run.built = len(ids)
    ledger.audit(
        session,
        actor=principal.label,
        action="run.built",
        object_type="payout_run",
        object_id=run.id,
        details={"payouts": len(ids), "entries": claimed},
        at=now,
    )
    return ids


def _claim(session: Session, run_id: int, unclaimed: Any) -> int:
    """Claim every unclaimed entry of the run's partners and currencies for their payout; return how many."""
    result = session.execute(
        insert(_I).from_select(
            ["payout_id", "entry_id"],
            select(_P.c.id, _E.c.id)
            .select_from(_E.join(_P, and_(_P.c.partner_id == _E.c.partner_id, _P.c.currency == _E.c.currency)))
            .where(_P.c.run_id == run_id, unclaimed),
        ),
        # SQLAlchemy keeps an INSERT's row count only when asked.
        execution_options={"preserve_rowcount": True},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def _items_of(payout_id: Any, partner_id: Any, currency: Any) -> Any:
    """Return the condition selecting a payout's items, reached through its partner's ledger."""
    # payout_items is keyed by entry alone (one index, appended in ledger order by a build): a
    # payout's items are those of its partner's entries in its currency that name it.
    entries = select(_E.c.id).where(_E.c.partner_id == partner_id, _E.c.currency == currency)
    return and_(_I.c.payout_id == payout_id, _I.c.entry_id.in_(entries.scalar_subquery()))


def _reconcile(
    session: Session, run_id: int, threshold: Callable[[int, str, int | None], int], offer_minimum: Any
) -> None:
    held = _P.join(_E, and_(_E.c.partner_id == _P.c.partner_id, _E.c.currency == _P.c.currency)).join(
        _I, and_(_I.c.entry_id == _E.c.id, _I.c.payout_id == _P.c.id)
    )
    offers: Any = cast(null(), BigInteger)
    if offer_minimum is not None:
        held = held.outerjoin(offer_minimum, offer_minimum.c.id == _E.c.offer_id)
        offers = func.max(offer_minimum.c.payout_min_minor)
    sums = session.execute(
        select(_P.c.id, _P.c.partner_id, _P.c.currency, func.sum(_E.c.amount_minor), func.count(), offers)
        .select_from(held)
        .where(_P.c.run_id == run_id)
        .group_by(_P.c.id, _P.c.partner_id, _P.c.currency)
    ).all()
    dropped = [row for row in sums if row[3] < threshold(row[1], row[2], row[5])]
    for payout_id, partner_id, currency, *_rest in dropped:
        session.execute(delete(_I).where(_items_of(payout_id, partner_id, currency)))
        session.execute(delete(_P).where(_P.c.id == payout_id))
    gone = {row[0] for row in dropped}
    kept = [{"b_id": row[0], "b_amount": row[3], "b_count": row[4]} for row in sums if row[0] not in gone]
    if kept:
        session.execute(
            update(_P)
            .where(_P.c.id == bindparam("b_id"))
            .values(amount_minor=bindparam("b_amount"), entry_count=bindparam("b_count")),
            kept,
        )


# ---- reading and finance's decisions -------------------------------------------------------------


def get_payout(session: Session, principal: Principal, payout_id: int) -> Payout:
    """Return a payout the principal may see (finance, admin; a partner its own), or 404."""
    payout = session.get(Payout, payout_id)
    visible = principal.role in (Role.FINANCE, Role.ADMIN) or (
        principal.role is Role.PARTNER and payout is not None and payout.partner_id == principal.partner_id
    )
    if payout is None or not visible:
        raise NotFound("payout not found")
    return payout


def list_payouts(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    partner_id: int | None = None,
    run_id: int | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[Payout]:
    """Return a page of payouts (finance, admin: all; a partner: its own), by id."""
    if principal.role is Role.BRAND:
        raise Forbidden("brands may not read payouts")
    query = select(Payout)
    if principal.role is Role.PARTNER:
        query = query.where(Payout.partner_id == principal.partner_id)
    query = where_given(query, (Payout.partner_id, partner_id), (Payout.status, status), (Payout.run_id, run_id))
    return list(session.scalars(paged(query, Payout.id, limit=limit, after=after)))


def payouts_by_id(session: Session, ids: Sequence[int]) -> list[Payout]:
    """Return payouts by id, in id order."""
    found: list[Payout] = []
    for chunk in _chunks(list(ids)):
        found.extend(session.scalars(select(Payout).where(Payout.id.in_(chunk))))
    return sorted(found, key=lambda p: p.id)


def decide(session: Session, principal: Principal, payout_id: int, action: str, *, note: str | None = None) -> Payout:
    """Approve, hold, release (unhold) or cancel a payout (finance, admin); 409 when its status does not allow it."""
    _finance(principal)
    payout = get_payout(session, principal, payout_id)
    current = payout.status
    target = rules.action_target(action, current)
    if target is None:
        raise Conflict(f"cannot {action} a payout that is {current}", code="invalid_transition")
    now = now_utc()
    values: dict[str, Any] = {"status": target}
    if action == "approve":
        values.update(approved_at=now, approved_by=principal.label)
    else:
        values.update(decided_at=now, decided_by=principal.label)
    if note is not None:
        values["note"] = note
    result = session.execute(update(_P).where(_P.c.id == payout_id, _P.c.status == current).values(**values))
    changed = result.rowcount  # type: ignore[attr-defined]
    if changed != 1:
        raise Conflict(f"the payout changed while you decided; it is no longer {current}", code="invalid_transition")
    if target == PayoutStatus.CANCELED:
        _release(session, payout_id, now)
    ledger.audit(
        session,
        actor=principal.label,
        action=f"payout.{target}",
        object_type="payout",
        object_id=payout_id,
        details={"from": current, "amount": money.format_amount(payout.amount_minor, payout.currency), "note": note},
        at=now,
    )
    session.refresh(payout)
    return payout


def _release(session: Session, payout_id: int, now: dt.datetime) -> None:
    """Return a payout's entries to the available balance, keeping a record of what it held."""
    partner_id, currency = session.execute(select(_P.c.partner_id, _P.c.currency).where(_P.c.id == payout_id)).one()
    held = _items_of(payout_id, partner_id, currency)
    session.execute(
        insert(_RELEASES).from_select(
            ["payout_id", "entry_id", "released_at"],
            select(_I.c.payout_id, _I.c.entry_id, literal(now, type_=_RELEASES.c.released_at.type)).where(held),
        )
    )
    session.execute(delete(_I).where(held))


# ---- settlement, phase 1 and 3 (settlement.py makes the gateway call between them) --------------


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


_ORDER_COLUMNS = (
    _P.c.id,
    _P.c.partner_id,
    _P.c.currency,
    _P.c.amount_minor,
    _P.c.destination,
    _P.c.idempotency_key,
    _P.c.transfer_group,
    _P.c.key_first_used_at,
)


def has_due(session: Session, *, now: dt.datetime) -> tuple[bool, bool]:
    """Say whether any payout waits to be sent, and whether any processing one waits for recovery."""
    approved = session.scalar(select(_P.c.id).where(_P.c.status == PayoutStatus.APPROVED.value).limit(1))
    stuck = session.scalar(
        select(_P.c.id)
        .where(
            _P.c.status == PayoutStatus.PROCESSING.value,
            or_(_P.c.lease_until.is_(None), _P.c.lease_until < now),
        )
        .limit(1)
    )
    return approved is not None, stuck is not None


def claim_approved(
    session: Session, *, gateway: str, actor: str, run_id: int | None, limit: int, now: dt.datetime
) -> list[SendOrder]:
    """Phase 1: move up to `limit` approved payouts to processing with key, destination and lease."""
    # The caller commits this before any gateway call: the intent is recorded first.
    ids = list(
        session.scalars(
            select(_P.c.id).where(_P.c.status == PayoutStatus.APPROVED.value).order_by(_P.c.id).limit(limit)
        )
    )
    if not ids:
        return []
    key = literal_column("'payout-'").op("||")(cast(_P.c.id, String))
    if gateway == "stripe":
        destination: Any = select(Partner.stripe_account_id).where(Partner.id == _P.c.partner_id).scalar_subquery()
    else:
        destination = literal_column("'partner-'").op("||")(cast(_P.c.partner_id, String))
    rows = session.execute(
        update(_P)
        .where(_P.c.id.in_(ids), _P.c.status == PayoutStatus.APPROVED.value)
        .values(
            status=PayoutStatus.PROCESSING.value,
            gateway=gateway,
            destination=destination,
            idempotency_key=key,
            transfer_group=key,
            key_first_used_at=now,
            lease_until=now + rules.LEASE,
            attempts=_P.c.attempts + 1,
            sent_at=now,
            batch_id=run_id,
        )
        .returning(*_ORDER_COLUMNS)
    ).all()
    orders = _orders(rows)
    _audit_many(session, actor, "payout.sent", [o.payout_id for o in orders], now, {"gateway": gateway})
    return orders


def claim_stuck(session: Session, *, now: dt.datetime, limit: int) -> list[SendOrder]:
    """Take over processing payouts whose lease ran out (a settler died or got no answer)."""
    stale = and_(
        _P.c.status == PayoutStatus.PROCESSING.value,
        or_(_P.c.lease_until.is_(None), _P.c.lease_until < now),
    )
    ids = list(session.scalars(select(_P.c.id).where(stale).order_by(_P.c.id).limit(limit)))
    if not ids:
        return []
    rows = session.execute(
        update(_P)
        .where(_P.c.id.in_(ids), stale)
        .values(lease_until=now + rules.LEASE, attempts=_P.c.attempts + 1)
        .returning(*_ORDER_COLUMNS)
    ).all()
    return _orders(rows)


def renew_key(session: Session, order: SendOrder, *, now: dt.datetime) -> bool:
    """Start a new key window before re-sending a payout the gateway has no transfer for."""
    return (
        session.execute(
            update(_P)
            .where(_P.c.id == order.payout_id, _P.c.status == PayoutStatus.PROCESSING.value)
            .values(key_first_used_at=now, lease_until=now + rules.LEASE)
        ).rowcount  # type: ignore[attr-defined]
        == 1
    )


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
    done: dict[str, list[int]] = {"paid": [], "failed": [], "unknown": []}
    paid = {o.payout_id: r for o, r in results if r.outcome == "paid"}
    for chunk in _chunks(sorted(paid)):
        # One statement per chunk: status, reference and time, only where still processing. Plain
        # SQL: compiling a VALUES construct of a thousand rows costs more than running it.
        rows = ", ".join(f"(:id{i}, :ref{i})" for i in range(len(chunk)))
        params: dict[str, Any] = {"now": now}
        for i, pid in enumerate(chunk):
            params[f"id{i}"], params[f"ref{i}"] = pid, paid[pid].reference
        statement = text(
            f"WITH outcome (id, reference) AS (VALUES {rows}) "  # noqa: S608 - placeholders only
            "UPDATE payouts SET status = 'paid', reference = outcome.reference, paid_at = :now,"
            " lease_until = NULL, last_error = NULL FROM outcome"
            " WHERE payouts.id = outcome.id AND payouts.status = 'processing' RETURNING payouts.id"
        ).bindparams(bindparam("now", type_=_P.c.paid_at.type))
        won = list(session.scalars(statement, params))
        if not won:
            continue
        # The payout entry's key is the payout's: only the one transition to paid can write it.
        session.execute(
            insert(_E).from_select(
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
                    _P.c.partner_id,
                    _P.c.currency,
                    literal(EntryKind.PAYOUT.value),
                    -_P.c.amount_minor,
                    _P.c.idempotency_key,
                    _P.c.id,
                    literal_column("'transfer '").op("||")(_P.c.reference),
                    literal(now, type_=_E.c.created_at.type),
                ).where(_P.c.id.in_(won)),
            )
        )
        _audit_many(session, actor, "payout.paid", won, now, with_reference=True)
        done["paid"].extend(won)
    for order, result in results:
        if result.outcome == "failed":
            changed = session.execute(
                update(_P)
                .where(_P.c.id == order.payout_id, _P.c.status == PayoutStatus.PROCESSING.value)
                .values(
                    status=PayoutStatus.FAILED.value,
                    failed_at=now,
                    failure_reason=(result.reason or "refused by the gateway")[:300],
                    lease_until=None,
                )
            ).rowcount  # type: ignore[attr-defined]
            if changed == 1:
                _release(session, order.payout_id, now)
                ledger.audit(
                    session,
                    actor=actor,
                    action="payout.failed",
                    object_type="payout",
                    object_id=order.payout_id,
                    details={"reason": result.reason},
                    at=now,
                )
                done["failed"].append(order.payout_id)
        elif result.outcome == "unknown":
            # Stays processing with its key: recovery retries the very same request after the lease.
            session.execute(
                update(_P)
                .where(_P.c.id == order.payout_id, _P.c.status == PayoutStatus.PROCESSING.value)
                .values(last_error=(result.reason or "outcome unknown")[:300])
            )
            ledger.audit(
                session,
                actor=actor,
                action="payout.unknown",
                object_type="payout",
                object_id=order.payout_id,
                details={"reason": result.reason, "idempotency_key": order.idempotency_key},
                at=now,
            )
            done["unknown"].append(order.payout_id)
    if run is not None:
        run.paid += len(done["paid"])
        run.failed += len(done["failed"])
        run.unknown += len(done["unknown"])
    return done


def _audit_many(
    session: Session,
    actor: str,
    action: str,
    payout_ids: Sequence[int],
    now: dt.datetime,
    details: dict[str, Any] | None = None,
    *,
    with_reference: bool = False,
) -> None:
    """Audit an action on many payouts with one INSERT ... SELECT (settlement writes thousands)."""
    if not payout_ids:
        return
    if with_reference:
        build = "json_build_object" if session.get_bind().dialect.name == "postgresql" else "json_object"
        detail: Any = getattr(func, build)("reference", _P.c.reference)
    else:
        detail = literal(details or {}, type_=_AUDIT.c.details.type)
    for chunk in _chunks(list(payout_ids)):
        session.execute(
            insert(_AUDIT).from_select(
                ["at", "actor", "action", "object_type", "object_id", "details"],
                select(
                    literal(now, type_=_AUDIT.c.at.type),
                    literal(actor),
                    literal(action),
                    literal("payout"),
                    cast(_P.c.id, String),
                    detail,
                ).where(_P.c.id.in_(chunk)),
            )
        )


def paid_in_batch(session: Session, run_id: int) -> Any:
    """Yield the rows of the manual export for the payouts a run paid, streamed (flat memory)."""
    return session.execute(
        select(
            _P.c.id,
            _P.c.partner_id,
            Partner.name,
            Partner.email,
            _P.c.currency,
            _P.c.amount_minor,
            _P.c.entry_count,
            _P.c.reference,
            _P.c.approved_by,
            _P.c.paid_at,
        )
        .join(Partner, Partner.id == _P.c.partner_id)
        .where(_P.c.batch_id == run_id, _P.c.status == PayoutStatus.PAID.value)
        .order_by(_P.c.id)
        .execution_options(yield_per=2000)
    )


# ---- Stripe: webhooks and onboarding --------------------------------------------------------------


def handle_stripe_event(session: Session, event: dict[str, Any], *, now: dt.datetime | None = None) -> str:
    """Apply a verified Stripe event once: a replayed event id changes nothing. Return what it did."""
    now = now or now_utc()
    stored = ledger.insert_ignoring_duplicates(
        session,
        _EVENTS,
        [{"event_id": event["id"], "type": event["type"][:64], "received_at": now, "outcome": None}],
        "event_id",
    )
    if not stored:
        return "duplicate"
    obj = event["data"]["object"]
    if event["type"] == "account.updated":
        outcome = _account_updated(session, obj)
    elif event["type"] == "transfer.reversed":
        outcome = _transfer_reversed(session, obj, now)
    else:
        outcome = "ignored"
    session.execute(update(_EVENTS).where(StripeEvent.event_id == event["id"]).values(outcome=outcome[:255]))
    return outcome


def _account_updated(session: Session, account: dict[str, Any]) -> str:
    account_id = account.get("id")
    if not isinstance(account_id, str):
        return "ignored: no account id"
    capabilities = account.get("capabilities") or {}
    transfers = capabilities.get("transfers") if isinstance(capabilities, dict) else None
    enabled = bool(account.get("payouts_enabled")) and transfers in (None, "active")
    changed = session.execute(
        update(_PARTNERS).where(Partner.stripe_account_id == account_id).values(stripe_payouts_enabled=enabled)
    ).rowcount  # type: ignore[attr-defined]
    return (
        f"account {account_id}: payouts {'enabled' if enabled else 'disabled'}"
        if changed
        else "ignored: unknown account"
    )


def _transfer_reversed(session: Session, transfer: dict[str, Any], now: dt.datetime) -> str:
    transfer_id = transfer.get("id")
    payout = session.scalars(select(Payout).where(Payout.reference == transfer_id)).one_or_none()
    if payout is None:
        return "ignored: unknown transfer"
    reversed_minor = min(int(transfer.get("amount_reversed") or 0), payout.amount_minor)
    booked = session.scalar(
        select(func.coalesce(func.sum(_E.c.amount_minor), 0)).where(
            _E.c.payout_id == payout.id, _E.c.kind == EntryKind.PAYOUT_REVERSAL.value
        )
    )
    session.execute(
        update(_P)
        .where(_P.c.id == payout.id, _P.c.status == PayoutStatus.PAID.value)
        .values(status=PayoutStatus.REVERSED.value, reversed_at=now)
    )
    delta = reversed_minor - int(booked or 0)
    if delta > 0:
        # A new entry gives the money back to the balance; the paid entries stay as they were.
        ledger.add_entry(
            session,
            partner_id=payout.partner_id,
            currency=payout.currency,
            kind=EntryKind.PAYOUT_REVERSAL,
            amount_minor=delta,
            key=f"payout-reversal-{payout.id}-{reversed_minor}",
            at=now,
            payout_id=payout.id,
            memo=f"transfer {transfer_id} reversed",
        )
        ledger.audit(
            session,
            actor="stripe",
            action="payout.reversed",
            object_type="payout",
            object_id=payout.id,
            details={"transfer": transfer_id, "amount": money.format_amount(delta, payout.currency)},
            at=now,
        )
    session.refresh(payout)
    return f"payout {payout.id} reversed ({delta} back to the balance)"


def stripe_onboarding(
    session: Session,
    principal: Principal,
    partner_id: int,
    *,
    gateway: PayoutGateway,
    refresh_url: str,
    return_url: str,
) -> dict[str, Any]:
    """Create the partner's Express account when it has none and return a one-time onboarding link."""
    partner = partners.get_partner(session, principal, partner_id)
    require(principal, Role.PARTNER, Role.ADMIN)
    known, email, payouts_enabled = partner.stripe_account_id, partner.email, partner.stripe_payouts_enabled
    # No transaction stays open over Stripe's calls (each up to the gateway's timeout): on SQLite
    # it would hold the database's only write lock, and every other writer would wait. Only reads
    # were made: ending the transaction undoes nothing. The account is stored after both calls.
    session.rollback()
    try:
        # Idempotent at Stripe (keyed by partner): a retry after a failed call gets the same account.
        account_id = known or gateway.create_account(partner_id=str(partner_id), email=email)
        url = gateway.onboarding_link(account_id=account_id, refresh_url=refresh_url, return_url=return_url)
    except GatewayUnsupported as exc:
        raise Conflict("Stripe is not configured: payouts are manual", code="stripe_not_configured") from exc
    except GatewayError as exc:
        raise GatewayUnavailable(f"Stripe did not answer as expected: {exc}") from exc
    if known is None:
        stored = session.execute(
            update(_PARTNERS)
            .where(Partner.id == partner_id, Partner.stripe_account_id.is_(None))
            .values(stripe_account_id=account_id)
        )
        if stored.rowcount == 1:  # type: ignore[attr-defined]
            ledger.audit(
                session,
                actor=principal.label,
                action="stripe.account_created",
                object_type="partner",
                object_id=partner_id,
                details={"account": account_id},
            )
        elif session.scalar(select(Partner.stripe_account_id).where(Partner.id == partner_id)) != account_id:
            # Another request stored the partner's account meanwhile: the same one, as Stripe keys
            # the creation by partner, unless the e-mail changed between the two.
            raise Conflict(
                "another onboarding of this partner stored a different Stripe account; ask again",
                code="onboarding_conflict",
            )
    return {"account_id": account_id, "url": url, "payouts_enabled": payouts_enabled}
