"""Reports from rollups give the raw scan's answer: random clicks and conversions over many hours,
status changes, reversals and late rows after their hour was rolled up, every grouping, both databases."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from network.auth import Principal, Role
from network.conversions import rules as conversion_rules
from network.conversions import statuses
from network.conversions.models import Conversion
from network.reports import rollup, service
from network.rollups.models import RollupDayMark, RollupDetail, RollupHour, RollupMark
from network.tracking.models import Click, Link
from tests.reports.conftest import World, add_click, add_conversion, make_link
from tests.rollups.support import check_rollups, close_hours

UTC = dt.UTC
FIRST = dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
#: The reports' "now": the hour it is in is open.
NOW = dt.datetime(2026, 3, 3, 14, 25, tzinfo=UTC)
SPAN = NOW - FIRST

GROUPINGS = (
    [], ["day"], ["offer"], ["partner"], ["offer", "partner"], ["day", "offer"], ["sub1"], ["sub1", "country"],
    ["sub2", "sub3", "sub4", "sub5"], ["country"], ["device"], ["day", "device", "partner"],
)  # fmt: skip
PERIODS = (
    (FIRST, NOW),  # up to now: the open hour is read raw
    (FIRST - dt.timedelta(days=2), NOW - dt.timedelta(hours=2)),  # whole days from the daily cubes
    (FIRST, NOW + dt.timedelta(days=1)),  # into the future
    (FIRST + dt.timedelta(hours=3, minutes=17, seconds=5), NOW - dt.timedelta(hours=4, minutes=1)),  # edges
    (FIRST + dt.timedelta(hours=5), FIRST + dt.timedelta(hours=29)),  # whole hours only
    (FIRST + dt.timedelta(hours=7, minutes=10), FIRST + dt.timedelta(hours=7, minutes=50)),  # inside one hour
)


def _pick(rng: random.Random, *values: Any) -> Any:
    return rng.choice(values)


def _time(rng: random.Random, start: dt.datetime = FIRST, end: dt.datetime = NOW) -> dt.datetime:
    return start + dt.timedelta(microseconds=rng.randrange(int((end - start) / dt.timedelta(microseconds=1))))


def _links(session: Session, world: World, rng: random.Random) -> list[Link]:
    offers = (world.offer, world.second_offer, world.eur_offer, world.foreign_offer)
    return [
        make_link(
            session, offer=offer, partner=partner, sub1=_pick(rng, None, "blog", "=cmd"), sub3=_pick(rng, None, "x")
        )
        for offer in offers
        for partner in (world.partner, world.other_partner)
    ]


def _clicks(session: Session, links: list[Link], rng: random.Random, count: int, **between: dt.datetime) -> list[Click]:
    return [
        add_click(
            session,
            rng.choice(links),
            when=_time(rng, **between),
            unique=rng.random() < 0.7,
            country=_pick(rng, None, "US", "DE"),
            device=_pick(rng, None, "mobile", "desktop"),
            sub1=_pick(rng, None, "a", "b"),
            sub2=_pick(rng, None, "c"),
            sub5=_pick(rng, None, "z"),
        )
        for _ in range(count)
    ]


def _conversions(session: Session, clicks: list[Click], links: list[Link], rng: random.Random, count: int) -> None:
    for _ in range(count):
        click = rng.choice(clicks) if rng.random() < 0.8 else None
        link = session.get(Link, click.link_id) if click is not None else rng.choice(links)
        assert link is not None
        start = click.created_at if click is not None else FIRST
        add_conversion(
            session, link, when=_time(rng, start, NOW), click=click,
            status=_pick(rng, "pending", "approved", "approved", "rejected", "reversed"),
            payout=rng.randrange(0, 900), revenue=rng.randrange(900, 2000), amount=_pick(rng, None, rng.randrange(1, 99999)),
        )  # fmt: skip


def _principals(world: World) -> list[Principal]:
    return [
        world.admin,
        world.brand_principal,
        world.partner_principal,
        Principal(Role.BRAND, key_id=9, brand_id=world.other_brand.id),
    ]


def _assert_same(session: Session, world: World) -> int:
    """Assert reports' rollup answers are the raw ones (every grouping and period, principals and
    filters in turn); return how many reports were compared."""
    principals = _principals(world)
    filters: list[dict[str, Any]] = [{}, {"country": "US"}, {"offer_id": world.offer.id}, {}]
    compared = 0
    for g, group_by in enumerate(GROUPINGS):
        for p, (start, end) in enumerate(PERIODS):
            principal = principals[(g + p) % len(principals)]
            extra = filters[(g * 3 + p) % len(filters)]
            if principal.brand_id == world.other_brand.id:
                extra = {}
            args = {"start": start, "end": end, "group_by": group_by, **extra}
            rolled = service.report(session, principal, now=NOW, **args)
            raw = service.report(session, principal, raw=True, **args)
            assert rolled == raw, (principal.role, args)
            compared += 1
    return compared


def _change_statuses(session: Session, rng: random.Random, before: dt.datetime) -> int:
    """Approve, reject and reverse conversions of hours already rolled up, by the statuses path; return how many."""
    changed = 0
    for conversion in session.scalars(select(Conversion).where(Conversion.created_at < before).order_by(Conversion.id)):
        targets = [t for t, sources in conversion_rules.TRANSITIONS.items() if conversion.status in sources]
        if targets and rng.random() < 0.4:
            at = NOW - dt.timedelta(minutes=1)
            changed += statuses.transition(session, conversion, rng.choice(targets), "test", actor="test", at=at)
    return changed


@pytest.mark.parametrize("seed", [1, 2])
def test_reports_from_rollups_equal_the_raw_scan(session: Session, db: Any, world: World, seed: int) -> None:
    rng = random.Random(seed)
    links = _links(session, world, rng)
    clicks = _clicks(session, links, rng, 160)
    _conversions(session, clicks, links, rng, 70)
    assert _assert_same(session, world)

    # The job rolls up the hours that ended; the open one stays marked.
    rolled = rollup.roll_up(db, now=NOW)
    assert rolled >= 30
    session.expire_all()
    open_hour = NOW.replace(minute=0)
    assert {hour for (hour,) in session.execute(select(RollupMark.hour))} <= {open_hour}
    _assert_same(session, world)

    # After the hours closed: status changes and reversals, late clicks and conversions.
    assert _change_statuses(session, rng, open_hour) > 0
    late = _clicks(session, links, rng, 25, end=open_hour)
    _conversions(session, late, links, rng, 15)
    session.flush()
    _assert_same(session, world)

    rollup.roll_up(db, now=NOW)
    session.expire_all()
    _assert_same(session, world)
    check_rollups(session)


def test_a_report_reads_rolled_up_hours_from_the_rollups(session: Session, db: Any, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    click = add_click(session, link, when=FIRST + dt.timedelta(hours=2, minutes=5))
    rollup.roll_up(db, now=NOW)
    # The raw row goes without a mark (as retention drops old clicks): the rollup still counts it.
    session.execute(delete(Click).where(Click.id == click.id))
    args = {"start": FIRST, "end": NOW, "group_by": ["day"]}
    assert service.report(session, world.admin, now=NOW, **args)[0]["clicks"] == 1
    assert service.report(session, world.admin, raw=True, **args) == []


def test_a_whole_day_is_read_from_its_daily_cube_until_an_hour_of_it_is_marked(
    session: Session, db: Any, world: World
) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=FIRST + dt.timedelta(hours=2, minutes=5), country="US")
    rollup.roll_up(db, now=NOW)
    session.expire_all()
    # The hourly rollups go without a mark: only the daily cubes still count the click.
    session.execute(delete(RollupDetail))
    session.execute(delete(RollupHour))
    args = {"start": FIRST, "end": FIRST + dt.timedelta(days=1)}
    for group_by, extra in (([], {}), (["day"], {}), (["sub1", "country"], {}), (["device"], {"country": "US"})):
        rows = service.report(session, world.admin, now=NOW, group_by=group_by, **args, **extra)
        assert [row["clicks"] for row in rows] == [1], group_by
    # A mark on one of its hours: the day is read from its hours (now gone) and the marked hour raw.
    session.add(RollupMark(hour=FIRST + dt.timedelta(hours=2), source=1))
    session.flush()
    assert [row["clicks"] for row in service.report(session, world.admin, now=NOW, **args)] == [1]
    session.add(RollupMark(hour=FIRST + dt.timedelta(hours=5), source=1))
    session.execute(delete(RollupMark).where(RollupMark.hour == FIRST + dt.timedelta(hours=2)))
    session.flush()
    assert service.report(session, world.admin, now=NOW, **args) == []
    # The day's own mark (an hour rolled up, the day not rebuilt yet) keeps it from its cube too.
    session.execute(delete(RollupMark))
    session.add(RollupDayMark(day=FIRST.date()))
    session.flush()
    assert service.report(session, world.admin, now=NOW, **args) == []
    session.execute(delete(RollupDayMark))
    assert [row["clicks"] for row in service.report(session, world.admin, now=NOW, **args)] == [1]


def test_a_click_shows_in_the_report_as_soon_as_it_is_written(session: Session, db: Any, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=FIRST + dt.timedelta(hours=1))
    rollup.roll_up(db, now=NOW)
    for when in (FIRST + dt.timedelta(hours=1, minutes=30), NOW - dt.timedelta(seconds=1)):
        add_click(session, link, when=when)
        rows = service.report(session, world.admin, start=FIRST, end=NOW, now=NOW)
        assert rows[0]["clicks"] == (2 if when < NOW - dt.timedelta(hours=1) else 3)


def test_rolling_an_hour_again_changes_nothing(session: Session, db: Any, world: World) -> None:
    links = _links(session, world, random.Random(7))
    _conversions(session, _clicks(session, links, random.Random(7), 40), links, random.Random(8), 20)
    close_hours(session)
    before = sorted(
        tuple(r) for r in session.execute(select(RollupDetail.hour, RollupDetail.clicks, RollupDetail.pending))
    )
    hour = FIRST + dt.timedelta(hours=3)
    session.add(RollupMark(hour=hour, source=1))
    session.add(RollupMark(hour=hour, source=2))
    session.flush()
    assert rollup.roll_hour(session, hour) == {1, 2}
    after = sorted(
        tuple(r) for r in session.execute(select(RollupDetail.hour, RollupDetail.clicks, RollupDetail.pending))
    )
    assert after == before
    check_rollups(session)


def test_mark_everything_rolls_up_rows_written_around_the_writers(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=FIRST + dt.timedelta(hours=4, minutes=2))
    session.execute(delete(RollupMark))  # as a bulk load leaves it
    assert rollup.mark_everything(session) >= 1
    check_rollups(session)
