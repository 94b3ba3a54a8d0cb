"""Cap counters: how much of each cap a UTC period has used, taken exactly under concurrency.

A counter row per (cap, period start, partner) holds what the period has used. Room is taken by a
conditional `UPDATE ... SET used = used + :n WHERE ... AND used + :n <= limit`, and the rows it
changed say whether there was room ("no room": it changed none); the row is created with
INSERT ... ON CONFLICT DO NOTHING. On PostgreSQL the UPDATE takes the row lock, so concurrent
transactions queue on it and re-check the condition against the committed value; on SQLite every
writing transaction holds the database lock (BEGIN IMMEDIATE). Counters are taken in key order
(cap id first) so two transactions never wait on each other in a cycle.

API: `consume` (one conversion or click, all caps or none), `take_room` (many conversions in
order, each all or none: `Ask` says what one asks), `used`, `partner_key`, `amount_for`.

Room taken is not given back when a conversion is later rejected or reversed: a cap limits
what the network accepted in a period, and handing room back after the fact would let a period
take more than its limit in total.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import bindparam, or_, select, tuple_, update
from sqlalchemy.orm import Session

from network.clock import period_start
from network.db import Raw, insert_new
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
    return insert_new(session, CapCounter, keys=["cap_id", "period_start", "partner_key"])


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
class Ask:
    """What one conversion asks of the caps: room in every conversion cap of its offer, at its time."""

    caps: Sequence[Cap]
    partner_id: int
    at: dt.datetime
    payout_minor: int


#: Takes room in one counter when all of it fits under the cap's limit as it is now (read in this
#: transaction, not the limit a cached context carries); the row it returns says there was room.
_TAKE_ROOM = Raw(
    lambda _dialect: (
        update(CapCounter)
        .where(_KEY, CapRow.id == CapCounter.cap_id, CapCounter.used + bindparam("n") <= CapRow.limit)
        .values(used=CapCounter.used + bindparam("n"))
        .returning(CapCounter.id)
    )
)
#: Counter rows by key, locked until the transaction ends (PostgreSQL; SQLite's transaction holds
#: the database's write lock), in key order so two transactions never wait on each other in a cycle.
_LOCK = (
    select(CapCounter.id)
    .where(
        tuple_(CapCounter.cap_id, CapCounter.period_start, CapCounter.partner_key).in_(
            bindparam("keys", expanding=True)
        )
    )
    .order_by(CapCounter.cap_id, CapCounter.period_start, CapCounter.partner_key)
    .with_for_update()
)

_Key = tuple[int, dt.datetime, int]


def _take(session: Session, key: _Key, n: int) -> bool:
    """Take `n` of one counter's room; return whether it had that much (no row yet: no room)."""
    cap_id, start, partner = key
    return bool(_TAKE_ROOM.all(session, {"b_cap": cap_id, "start": start, "key": partner, "n": n}))


def _give_back(session: Session, shares: Sequence[tuple[_Key, int]]) -> None:
    for (cap_id, start, partner), n in shares:
        session.connection().execute(_GIVE_BACK, {"b_cap": cap_id, "start": start, "key": partner, "n": n})


def _lock(session: Session, keys: Sequence[_Key]) -> None:
    """Make the counter rows of `keys` that do not exist yet, then lock them all in key order."""
    connection = session.connection()
    # A concurrent maker wins harmlessly; rows made after some were locked could otherwise be
    # waited for out of order, at every period's start.
    connection.execute(_create(session), [{"cap_id": c, "period_start": s, "partner_key": k, "used": 0}
                                          for c, s, k in keys])  # fmt: skip
    connection.execute(_LOCK, {"keys": list(keys)})


def take_room(session: Session, asks: Sequence[Ask]) -> list[bool]:
    """Take room for many conversions in order, each in all its caps or in none; return which had room.

    The same outcome as `consume` called for each in turn, in few statements: each counter's room
    for the whole batch is taken by one conditional UPDATE, in key order, and the rows it changed
    say whether it had room. From the first counter without room for all of it (a cap about to be
    reached, or a period's first conversion, whose row does not exist yet) the counters left are
    locked and taken conversion by conversion; a conversion refused there gives back what it had
    of the counters taken whole.
    """
    wanted = [
        [(key, n) for _cap, key, n in _asks(a.caps, partner_id=a.partner_id, at=a.at, payout_minor=a.payout_minor)]
        for a in asks
    ]
    totals: dict[_Key, int] = {}
    for shares in wanted:
        for key, n in shares:
            totals[key] = totals.get(key, 0) + n
    keys = sorted(totals)
    whole = 0
    while whole < len(keys) and _take(session, keys[whole], totals[keys[whole]]):
        whole += 1
    if whole == len(keys):
        return [True] * len(asks)
    rest = set(keys[whole:])
    _lock(session, keys[whole:])
    return [_take_each(session, shares, rest) for shares in wanted]


def _take_each(session: Session, shares: Sequence[tuple[_Key, int]], rest: set[_Key]) -> bool:
    """Take one conversion's room in the counters of `rest`, all or none; give back its whole-taken share when none."""
    taken: list[tuple[_Key, int]] = []
    for key, n in shares:
        if key not in rest:
            continue
        if not _take(session, key, n):
            _give_back(session, taken + [(k, m) for k, m in shares if k not in rest])
            return False
        taken.append((key, n))
    return True
