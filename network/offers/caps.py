"""Cap counters: how much of each cap a UTC period has used, consumed exactly under concurrency.

A counter row per (cap, period start, partner) is consumed by a conditional
`UPDATE ... SET used = used + :n WHERE ... AND used + :n <= limit` and the affected row count says
whether it fit; the row is created with INSERT ... ON CONFLICT DO NOTHING. On PostgreSQL the UPDATE
takes the row lock, so concurrent transactions queue on it and re-check the condition against the
committed value; on SQLite every writing transaction holds the database lock (BEGIN IMMEDIATE).
Caps are consumed in cap id order so two transactions never wait on each other in a cycle.

Consumed caps are not given back when a conversion is later rejected or reversed: a cap limits
what the network accepted in a period, and handing room back after the fact would let a period
take more than its limit in total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from sqlalchemy import Integer, bindparam, func, literal_column, or_, select, tuple_, update
from sqlalchemy.orm import Session

from network.clock import as_utc, period_start
from network.db import Raw, insert_for
from network.offers.models import Cap as CapRow
from network.offers.models import CapCounter


class Cap(Protocol):
    """A cap as these functions need it: a Cap row, a row of its columns, or a snapshot's frozen view."""

    @property
    def id(self) -> int: ...
    @property
    def metric(self) -> str: ...
    @property
    def period(self) -> str: ...
    @property
    def limit(self) -> int: ...
    @property
    def scope(self) -> str: ...


#: Cap metrics a conversion consumes (click caps are counted by tracking).
CONVERSION_METRICS = ("conversions", "payout")
#: The caps a conversion consumes, as a filter (not metric IN (...): an expanding parameter is
#: processed again on every execution).
CONVERSION_CAP = or_(*(CapRow.metric == metric for metric in CONVERSION_METRICS))


_KEY = (
    (CapCounter.cap_id == bindparam("b_cap"))
    & (CapCounter.period_start == bindparam("start"))
    & (CapCounter.partner_key == bindparam("key"))
)
# Built once and executed with parameters only: the hot path reuses SQLAlchemy's compiled form.
_TAKE = (
    update(CapCounter)
    .where(_KEY & (CapCounter.used + bindparam("n") <= bindparam("limit")))
    .values(used=CapCounter.used + bindparam("n"))
)
_GIVE_BACK = update(CapCounter).where(_KEY).values(used=CapCounter.used - bindparam("n"))
_USED = select(CapCounter.used).where(_KEY)


def _create(session: Session) -> Any:
    return insert_for(session.get_bind().dialect.name)(CapCounter).on_conflict_do_nothing(
        index_elements=["cap_id", "period_start", "partner_key"]
    )


def partner_key(cap: Cap, partner_id: int) -> int:
    """Return the counter key of a cap for a partner: the partner for partner-scoped caps, else 0."""
    return partner_id if cap.scope == "partner" else 0


def _consume_one(session: Session, cap: Cap, start: dt.datetime, key: int, n: int) -> bool:
    params = {"b_cap": cap.id, "start": start, "key": key, "n": n, "limit": cap.limit}
    connection = session.connection()
    if connection.execute(_TAKE, params).rowcount == 1:
        return True
    # No room, or no row yet for this period: make the row (a concurrent maker wins harmlessly), retry.
    connection.execute(_create(session), {"cap_id": cap.id, "period_start": start, "partner_key": key, "used": 0})
    return connection.execute(_TAKE, params).rowcount == 1


def _release_one(session: Session, cap: Cap, start: dt.datetime, key: int, n: int) -> None:
    session.connection().execute(_GIVE_BACK, {"b_cap": cap.id, "start": start, "key": key, "n": n})


def amount_for(cap: Cap, payout_minor: int) -> int:
    """Return how much of `cap` one conversion uses: 1, or its payout for payout caps."""
    return payout_minor if cap.metric == "payout" else 1


def _asks(
    caps: Sequence[Cap],
    *,
    partner_id: int,
    at: dt.datetime,
    payout_minor: int,
    metrics: Sequence[str] = CONVERSION_METRICS,
) -> list[tuple[Cap, tuple[int, dt.datetime, int], int]]:
    """Return what one conversion (or click) asks of its caps, in cap id order: each cap, its counter's
    key (cap, period start, partner key) and the amount; caps it uses nothing of are left out."""
    asks = []
    for cap in sorted((c for c in caps if c.metric in metrics), key=lambda c: c.id):
        n = amount_for(cap, payout_minor)
        if n:
            asks.append((cap, (cap.id, period_start(at, cap.period), partner_key(cap, partner_id)), n))
    return asks


def consume(
    session: Session,
    caps: Sequence[Cap],
    *,
    partner_id: int,
    at: dt.datetime,
    payout_minor: int = 0,
    metrics: Sequence[str] = CONVERSION_METRICS,
) -> bool:
    """Consume every cap of `metrics` for one conversion (or click) at `at`; all or none. Return whether all had room."""
    taken: list[tuple[Cap, dt.datetime, int, int]] = []
    for cap, (_cap_id, start, key), n in _asks(caps, partner_id=partner_id, at=at, payout_minor=payout_minor,
                                                metrics=metrics):  # fmt: skip
        if not _consume_one(session, cap, start, key, n):
            # Same transaction, rows still locked by us: undo what this conversion took.
            for done in reversed(taken):
                _release_one(session, *done)
            return False
        taken.append((cap, start, key, n))
    return True


def used(session: Session, cap: Cap, *, at: dt.datetime, partner_id: int = 0) -> int:
    """Return how much of `cap` the period holding `at` has used."""
    start = period_start(at, cap.period)
    return int(session.scalar(_USED, {"b_cap": cap.id, "start": start, "key": partner_key(cap, partner_id)}) or 0)


# ---- many conversions in one transaction ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """What one conversion asks of the caps: every conversion cap of its offer, at its time."""

    caps: Sequence[Cap]
    partner_id: int
    at: dt.datetime
    payout_minor: int


#: Counter rows by key, locked until the transaction ends (PostgreSQL; SQLite's transaction holds
#: the database's write lock), in key order so two transactions never wait on each other in a cycle.
_LOCK = (
    select(CapCounter.id, CapCounter.cap_id, CapCounter.period_start, CapCounter.partner_key, CapCounter.used)
    .where(
        tuple_(CapCounter.cap_id, CapCounter.period_start, CapCounter.partner_key).in_(
            bindparam("keys", expanding=True)
        )
    )
    .order_by(CapCounter.cap_id, CapCounter.period_start, CapCounter.partner_key)
)
_SET_USED = update(CapCounter).where(CapCounter.id == bindparam("b_id")).values(used=bindparam("b_used"))


def consume_many(session: Session, claims: Sequence[Claim]) -> list[bool]:
    """Consume the caps of many conversions in order, each all or none; return which had room.

    The same outcome as `consume` called for each in turn: the counters are read once under their
    row locks, decided here, and written back once.
    """
    wanted = [
        [
            (key, n, cap.limit)
            for cap, key, n in _asks(c.caps, partner_id=c.partner_id, at=c.at, payout_minor=c.payout_minor)
        ]
        for c in claims
    ]
    keys = sorted({key for asks in wanted for key, _n, _limit in asks})
    if not keys:
        return [True] * len(claims)
    connection = session.connection()
    # Make every row a period's first conversions need (a concurrent maker wins harmlessly; an
    # existing row is not locked by this), then lock them all in key order: rows made after some
    # were locked could otherwise be waited for out of order, at every period's start.
    made = [{"cap_id": c, "period_start": s, "partner_key": k, "used": 0} for c, s, k in keys]
    connection.execute(_create(session), made)
    lock = _LOCK.with_for_update() if connection.dialect.name == "postgresql" else _LOCK
    rows = {(r.cap_id, as_utc(r.period_start), r.partner_key): r for r in connection.execute(lock, {"keys": keys})}
    used = {key: row.used for key, row in rows.items()}
    fits = []
    for asks in wanted:
        ok = all(used[key] + n <= limit for key, n, limit in asks)
        if ok:
            for key, n, _limit in asks:
                used[key] += n
        fits.append(ok)
    changed = [{"b_id": rows[key].id, "b_used": n} for key, n in used.items() if n != rows[key].used]
    if changed:
        connection.execute(_SET_USED, changed)
    return fits


def _take_share(dialect: str) -> Any:
    """Return the statement that takes one counter's share of a batch, only when all of it fits.

    On PostgreSQL a share that does not fit (or a counter without its row yet) is an error, which
    aborts the transaction: the batch can then send its COMMIT in the same round trip, and a
    transaction that took too much can only fail, never commit (SQLite reads the row count instead).
    """
    taken = (
        update(CapCounter)
        .where(
            _KEY,
            CapRow.id == CapCounter.cap_id,
            CapCounter.used + bindparam("n") <= CapRow.limit,
        )
        .values(used=CapCounter.used + bindparam("n"))
    )
    if dialect != "postgresql":
        return taken
    changed = taken.returning(CapCounter.id).cte("taken")
    # 1 / 0 when the UPDATE changed no row: division_by_zero (22012), see NO_ROOM.
    return select(literal_column("1") / func.count().cast(Integer)).select_from(changed)


#: One counter's share of a batch, taken only when all of it fits under the cap's limit as it is now.
_TAKE_SHARE = Raw(_take_share)

#: The error of a share that did not fit, on PostgreSQL (_take_share).
NO_ROOM = psycopg.errors.DivisionByZero


def no_room(error: BaseException) -> bool:
    """Return whether `error` says a counter share did not fit: the driver's, or SQLAlchemy's wrapping it."""
    return isinstance(error, NO_ROOM) or isinstance(getattr(error, "orig", None), NO_ROOM)


def take_together(session: Session, claims: Sequence[Claim]) -> Callable[[], bool]:
    """Take every claim's share of its counters at once, one conditional UPDATE per counter in key order.

    Return how to tell whether all of it fitted, once the UPDATEs have answered: inside a pipeline
    (db.pipelined) they travel with the statements before them, and are answered when it ends. When
    not all fitted (no room, or a counter without its row yet), part may have been taken and the
    caller rolls the transaction back. On PostgreSQL a share that does not fit raises NO_ROOM
    instead (when the pipeline ends), and the UPDATEs are the row locks, taken as late in the
    transaction as the caller runs this.
    """
    totals: dict[tuple[int, dt.datetime, int], int] = {}
    for c in claims:
        for _cap, key, n in _asks(c.caps, partner_id=c.partner_id, at=c.at, payout_minor=c.payout_minor):
            totals[key] = totals.get(key, 0) + n
    shares = [{"b_cap": c, "start": s, "key": k, "n": n} for (c, s, k), n in sorted(totals.items())]
    # Each UPDATE names one counter row: all fitted when every one of them changed its row.
    changed = _TAKE_SHARE.many(session, shares)
    return lambda: changed() == len(shares)
