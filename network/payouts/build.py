"""Building payouts from the ledger in SQL: one pending_approval payout per partner and currency whose
available balance reaches its threshold (rules.payout_threshold), holding exactly the entries it settles."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    BigInteger,
    String,
    and_,
    bindparam,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
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
from network.payouts import attachment, ledger, rules
from network.payouts.models import PayoutRun, PayoutStatus
from network.payouts.tables import chunks, entries, items, offers, partners, payouts

#: Arbitrary, fixed: the PostgreSQL advisory lock that lets one payout build run at a time.
BUILD_LOCK = 0x5041594F  # "PAYO"
_COLUMNS = ["partner_id", "currency", "amount_minor", "entry_count", "status", "run_id", "created_at", "attempts"]


def start_run(session: Session, *, actor: str, kind: str, gateway: str | None) -> PayoutRun:
    """Record the start of a payout run (its id names the payouts it builds and the batch it pays)."""
    run = PayoutRun(actor=actor, kind=kind, gateway=gateway, started_at=now_utc())
    session.add(run)
    session.flush()
    return run


class Thresholds:
    """The thresholds of one build: the partners' and offers' that override the setting, read once."""

    def __init__(self, session: Session, settings: Settings) -> None:
        rows = session.execute(
            select(partners.c.id, partners.c.payout_min_amount).where(
                partners.c.payout_min_amount.is_not(None), partners.c.payout_min_amount != ""
            )
        ).all()
        #: Partners with a threshold of their own (few), and that threshold.
        self.partners: dict[int, str] = {partner_id: amount for partner_id, amount in rows if amount}
        query = select(offers.c.id, offers.c.payout_min_minor).where(offers.c.payout_min_minor.is_not(None))
        # The usual case is no offer with a threshold: then the ledger is summed without a join.
        self.offers = query.subquery("offer_minimum") if session.scalar(query.limit(1)) is not None else None
        self._setting = settings.payout_min_amount
        self._cache: dict[tuple[int, str, int | None], int] = {}

    def of(self, partner_id: int, currency: str, offers_highest: int | None) -> int:
        """Return the threshold of a partner's payout in `currency` holding money of offers whose highest is given."""
        key = (partner_id, currency, offers_highest)
        if key not in self._cache:
            self._cache[key] = rules.payout_threshold(
                currency, setting=self._setting, partner=self.partners.get(partner_id), offers=offers_highest
            )
        return self._cache[key]

    def with_offers(self, source: Any) -> tuple[Any, Any]:
        """Return `source` (holding `entries`) joined to their offers' thresholds, and a group's highest one."""
        if self.offers is None:
            return source, cast(null(), BigInteger)
        joined = source.outerjoin(self.offers, self.offers.c.id == entries.c.offer_id)
        return joined, func.max(self.offers.c.payout_min_minor)


@contextmanager
def _one_build_at_a_time(session: Session) -> Iterator[Callable[[], None]]:
    """Hold PostgreSQL's build lock and give the build memory; yield what to run before attaching entries.

    SQLite needs neither: BEGIN IMMEDIATE already serializes writers, and it takes no planner hints."""
    if session.get_bind().dialect.name != "postgresql":
        yield lambda: None
        return
    session.execute(select(func.pg_advisory_xact_lock(BUILD_LOCK)))
    # Hash the whole ledger against the live items in memory rather than in batches on disk.
    saved = session.execute(text("SELECT current_setting('work_mem'), current_setting('enable_nestloop')")).one()
    session.execute(text("SELECT set_config('work_mem', '64MB', true)"))

    def before_attaching() -> None:
        # Attaching reads payout_items while it writes them: with a nested loop the planner may pick
        # for a small table, each entry would rescan every row inserted so far (quadratic). Tell it
        # how many payouts there are, and make it hash.
        session.execute(text("ANALYZE payouts"))
        session.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))

    try:
        yield before_attaching
    finally:
        session.execute(
            text("SELECT set_config('work_mem', :work_mem, true), set_config('enable_nestloop', :nestloop, true)"),
            {"work_mem": saved[0], "nestloop": saved[1]},
        )


def build_payouts(
    session: Session, principal: Principal, *, settings: Settings, run: PayoutRun, now: dt.datetime | None = None
) -> list[int]:
    """Build a pending_approval payout per partner and currency at its threshold, attaching its entries; return ids."""
    require(principal, Role.FINANCE, Role.ADMIN)
    now = now or now_utc()
    thresholds = Thresholds(session, settings)
    constants = {"status": PayoutStatus.PENDING_APPROVAL.value, "run_id": run.id, "created_at": now, "attempts": 0}
    with _one_build_at_a_time(session) as before_attaching:
        _insert_on_the_default(session, thresholds, constants)
        _insert_on_their_own(session, thresholds, constants)
        expected = session.scalar(
            select(func.coalesce(func.sum(payouts.c.entry_count), 0)).where(payouts.c.run_id == run.id)
        )
        if not expected:
            return []
        before_attaching()
        attached = attachment.attach(session, run.id)
    if attached != expected:
        # Entries committed (or released) between the sum and the attaching joined the payouts:
        # make each amount its entries again, and drop a payout that fell below its threshold. The
        # payouts are stamped again too: one is never older than an entry it holds.
        _reconcile(session, run.id, thresholds, max(now, now_utc()))
    ids = list(session.scalars(select(payouts.c.id).where(payouts.c.run_id == run.id).order_by(payouts.c.id)))
    run.built = len(ids)
    ledger.audit(
        session,
        actor=principal.label,
        action="run.built",
        object_type="payout_run",
        object_id=run.id,
        details={"payouts": len(ids), "entries": attached},
        at=now,
    )
    return ids


def _insert_on_the_default(session: Session, thresholds: Thresholds, constants: dict[str, Any]) -> None:
    """Sum, compare and create the payouts of partners without a threshold of their own, in one statement."""
    # rules.payout_threshold in SQL: the highest of the offers' thresholds, else the setting's.
    source, offers_highest = thresholds.with_offers(entries)
    total = func.sum(entries.c.amount_minor)
    sums = (
        select(entries.c.partner_id, entries.c.currency, total.label("amount"), func.count().label("n"))
        .add_columns(offers_highest.label("offers"))
        .select_from(source)
        .where(attachment.unattached())
        .group_by(entries.c.partner_id, entries.c.currency)
        .having(total > 0)
        .cte("sums")
    )
    minimum = (
        values(column("currency", String(3)), column("minor", BigInteger), name="minimum")
        .data([(currency, thresholds.of(0, currency, None)) for currency in sorted(money.CURRENCIES)])
        .cte("minimum")
    )
    fixed = (
        literal(constants["status"]),
        literal(constants["run_id"]),
        literal(constants["created_at"], type_=payouts.c.created_at.type),
        literal(constants["attempts"]),
    )
    session.execute(
        insert(payouts).from_select(
            _COLUMNS,
            select(sums.c.partner_id, sums.c.currency, sums.c.amount, sums.c.n, *fixed)
            .select_from(
                sums.join(minimum, minimum.c.currency == sums.c.currency).join(
                    partners, partners.c.id == sums.c.partner_id
                )
            )
            .where(
                sums.c.amount >= func.coalesce(sums.c.offers, minimum.c.minor),
                or_(partners.c.payout_min_amount.is_(None), partners.c.payout_min_amount == ""),
            )
            .order_by(sums.c.partner_id, sums.c.currency),
        )
    )


def _insert_on_their_own(session: Session, thresholds: Thresholds, constants: dict[str, Any]) -> None:
    """Create the payouts of partners with a threshold of their own (few), compared here."""
    source, offers_highest = thresholds.with_offers(entries)
    total = func.sum(entries.c.amount_minor)
    for chunk in chunks(sorted(thresholds.partners)):
        groups = session.execute(
            select(entries.c.partner_id, entries.c.currency, total, func.count(), offers_highest)
            .select_from(source)
            .where(attachment.unattached(), entries.c.partner_id.in_(chunk))
            .group_by(entries.c.partner_id, entries.c.currency)
            .having(total > 0)
            .order_by(entries.c.partner_id, entries.c.currency)
        ).all()
        rows = [
            {"partner_id": partner_id, "currency": currency, "amount_minor": int(amount), "entry_count": int(n)}
            | constants
            for partner_id, currency, amount, n, highest in groups
            if amount >= thresholds.of(partner_id, currency, highest)
        ]
        if rows:
            session.execute(insert(payouts), rows)


def _reconcile(session: Session, run_id: int, thresholds: Thresholds, stamp: dt.datetime) -> None:
    """Make each payout of the run the sum of its entries again, created at `stamp`; drop one below its threshold."""
    held = payouts.join(
        entries, and_(entries.c.partner_id == payouts.c.partner_id, entries.c.currency == payouts.c.currency)
    ).join(items, and_(items.c.entry_id == entries.c.id, items.c.payout_id == payouts.c.id))
    source, offers_highest = thresholds.with_offers(held)
    sums = session.execute(
        select(payouts.c.id, payouts.c.partner_id, payouts.c.currency, func.sum(entries.c.amount_minor), func.count())
        .add_columns(offers_highest)
        .select_from(source)
        .where(payouts.c.run_id == run_id)
        .group_by(payouts.c.id, payouts.c.partner_id, payouts.c.currency)
    ).all()
    dropped = [row for row in sums if row[3] < thresholds.of(row[1], row[2], row[5])]
    for payout_id, partner_id, currency, *_rest in dropped:
        session.execute(delete(items).where(attachment.items_of(payout_id, partner_id, currency)))
        session.execute(delete(payouts).where(payouts.c.id == payout_id))
    gone = {row[0] for row in dropped}
    kept = [{"b_id": row[0], "b_amount": row[3], "b_count": row[4]} for row in sums if row[0] not in gone]
    if kept:
        session.execute(
            update(payouts)
            .where(payouts.c.id == bindparam("b_id"))
            .values(amount_minor=bindparam("b_amount"), entry_count=bindparam("b_count"), created_at=stamp),
            kept,
        )
