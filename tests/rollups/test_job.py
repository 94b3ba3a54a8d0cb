"""The rollup job under several processes and after a crash: no hour counted twice or missed."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from network.auth import Principal, Role
from network.conversions import statuses
from network.conversions.models import Conversion
from network.db import Database
from network.reports import rollup, service
from network.rollups.models import RollupMark
from network.tracking.models import Link
from tests.factories import make_brand, make_offer, make_partner
from tests.reports.conftest import add_click, add_conversion, make_link
from tests.rollups.support import check_rollups
from tests.rollups.test_equal_to_raw import FIRST, NOW

ADMIN_GROUPINGS = ([], ["day"], ["offer", "partner"], ["sub1", "country"])


def _world(database: Database) -> list[int]:
    """Make a brand, two partners and their links; return the link ids."""
    with database.session_scope() as session:
        brand = make_brand(session)
        offer = make_offer(session, brand=brand)
        partners = [make_partner(session, name=f"Partner {n}") for n in range(2)]
        return [make_link(session, offer=offer, partner=partner, sub1=f"s{n}").id for n, partner in enumerate(partners)]


def _write(database: Database, links: list[int], rng: random.Random, clicks: int, end: dt.datetime = NOW) -> None:
    """Write clicks and a conversion for every other click, in hours from FIRST to `end`, in one transaction."""
    with database.session_scope() as session:
        for n in range(clicks):
            link = session.get(Link, rng.choice(links))
            assert link is not None
            when = FIRST + (end - FIRST) * rng.random()
            click = add_click(session, link, when=when, country=rng.choice(["US", "DE", None]))
            if n % 2:
                add_conversion(session, link, click=click, when=when, status=rng.choice(["pending", "approved"]))


def _change_some(database: Database, rng: random.Random) -> None:
    """Reverse or reject a few conversions, of hours long rolled up, by the statuses path."""
    with database.session_scope() as session:
        for conversion in session.scalars(select(Conversion).where(Conversion.status.in_(("pending", "approved")))):
            if rng.random() < 0.2:
                target = "reversed" if conversion.status == "approved" else "rejected"
                statuses.transition(session, conversion, target, "test", actor="test", at=NOW)


def _assert_exact(database: Database) -> None:
    with database.session_scope() as session:
        check_rollups(session)
        _assert_reports_equal(session)


def _assert_reports_equal(session: Session) -> None:
    admin = Principal(Role.ADMIN, key_id=1)
    for group_by in ADMIN_GROUPINGS:
        args: dict[str, Any] = {"start": FIRST, "end": NOW, "group_by": group_by}
        assert service.report(session, admin, now=NOW, **args) == service.report(session, admin, raw=True, **args)


def test_two_job_runs_at_once_beside_writers_count_every_hour_once(committed_db: Database) -> None:
    links = _world(committed_db)
    _write(committed_db, links, random.Random(1), 60)
    start = threading.Barrier(4)
    failures: list[BaseException] = []

    def run(work: Any) -> None:
        try:
            start.wait(timeout=30)
            work()
        except BaseException as error:
            failures.append(error)

    def job() -> None:
        for _ in range(4):
            rollup.catch_up(committed_db, now=NOW)

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(4):
            _write(committed_db, links, rng, 5, end=NOW - dt.timedelta(hours=2))
            _change_some(committed_db, rng)

    threads = [threading.Thread(target=run, args=(work,)) for work in (job, job, lambda: writer(2), lambda: writer(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    rollup.catch_up(committed_db, now=NOW)
    _assert_exact(committed_db)


def test_a_run_killed_before_its_commit_leaves_its_marks_and_the_next_run_is_exact(
    committed_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    links = _world(committed_db)
    _write(committed_db, links, random.Random(4), 40)
    rollup.catch_up(committed_db, now=NOW)
    _write(committed_db, links, random.Random(5), 20, end=NOW - dt.timedelta(hours=1))
    _change_some(committed_db, random.Random(6))
    with committed_db.reading() as session:
        marks = session.scalar(select(func.count(RollupMark.id)))
    recompute = rollup.recompute

    def killed(session: Session, hour: dt.datetime, sources: set[int]) -> None:
        recompute(session, hour, sources)
        raise RuntimeError("killed between the recompute and the commit")

    monkeypatch.setattr(rollup, "recompute", killed)
    with pytest.raises(RuntimeError):
        rollup.roll_up(committed_db, now=NOW)
    with committed_db.reading() as session:
        assert session.scalar(select(func.count(RollupMark.id))) == marks
        _assert_reports_equal(session)
    monkeypatch.undo()
    assert rollup.catch_up(committed_db, now=NOW) > 0
    _assert_exact(committed_db)


def test_the_catch_up_command_rolls_up_every_ended_hour(app: Any, session: Session, world: Any) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=FIRST + dt.timedelta(hours=1))
    session.execute(delete(RollupMark))  # as a bulk load around the writers leaves it
    result = app.test_cli_runner().invoke(args=["rollups", "catch-up", "--mark-all"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"marked": 1, "hours": 1, "seconds": ANY}
    check_rollups(session)
