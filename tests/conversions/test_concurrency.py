"""Races from several processes against PostgreSQL: replays (RELIABILITY 9) and caps (RELIABILITY 12)."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from network.clock import UTC
from network.conversions.models import Conversion
from network.offers.models import CapCounter
from tests.conversions.conftest import CPL, SECRET, make_click, make_link
from tests.conversions.invariants import check_invariants
from tests.conversions.workers import fire
from tests.factories import make_brand, make_offer, make_partner

pytestmark = pytest.mark.postgres_only

PROCESSES = 4
THREADS = 5


@pytest.fixture(autouse=True)
def _postgres_only(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("several processes racing need PostgreSQL")


def _race(database_url: str, batches: list[tuple[dt.datetime, list[str]]]) -> list[tuple[int, Any]]:
    """Run one process per batch (its frozen now and its paths), all released at once; return every answer."""
    # forkserver: one clean process imports the app once, and each worker forks from it (fast
    # start, nothing inherited from pytest's process: no engines, no threads).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.conversions.workers"])
    barrier = ctx.Barrier(len(batches))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=fire, args=(database_url, SECRET, now.isoformat(), paths, THREADS, barrier, results))
        for now, paths in batches
    ]
    for proc in procs:
        proc.start()
    answers: list[tuple[int, Any]] = []
    try:
        for _ in procs:
            answers.extend(results.get(timeout=120))
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
    assert all(proc.exitcode == 0 for proc in procs)
    return answers


def _setup(committed_db: Any, **offer: Any) -> tuple[int, str, Any]:
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        the_offer = make_offer(session, brand=brand, events=[CPL], **offer)
        link = make_link(session, offer=the_offer, partner=partner)
        session.expunge(link)
        return the_offer.id, brand.postback_token, link


def test_200_identical_postbacks_from_several_processes_make_one_conversion(committed_db: Any) -> None:
    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    _offer_id, token, link = _setup(committed_db)
    with committed_db.session_scope() as session:
        click = make_click(session, link, at=now - dt.timedelta(hours=1))
    path = "/postback?" + urlencode(
        {"click_id": click, "event": "lead", "txn_id": "R-9", "amount": "5.00", "token": token}
    )
    per_process = 200 // PROCESSES
    answers = _race(committed_db.url, [(now, [path] * per_process) for _ in range(PROCESSES)])

    assert len(answers) == 200
    assert {status for status, _ in answers} == {200}
    ids = {body["conversion_id"] for _, body in answers}
    assert len(ids) == 1
    assert Counter(body["duplicate"] for _, body in answers) == {False: 1, True: 199}
    assert {body["status"] for _, body in answers} == {"approved"}
    with committed_db.session_scope() as session:
        rows = session.scalars(select(Conversion)).all()
        assert [row.id for row in rows] == list(ids)
        check_invariants(session, SECRET)


def test_daily_cap_of_10_with_50_concurrent_conversions_around_midnight(committed_db: Any) -> None:
    before = dt.datetime(2026, 3, 10, 23, 59, 59, 900_000, tzinfo=UTC)
    after = dt.datetime(2026, 3, 11, 0, 0, 0, 100_000, tzinfo=UTC)
    _offer_id, token, link = _setup(committed_db, caps=[{"metric": "conversions", "period": "day", "limit": 10}])
    with committed_db.session_scope() as session:
        clicks = [make_click(session, link, at=before - dt.timedelta(hours=1)) for _ in range(50)]
    paths = ["/postback?" + urlencode({"click_id": c, "event": "lead", "token": token}) for c in clicks]
    # Two processes just before midnight (25 conversions), two just after (25).
    batches = [(before, paths[0:13]), (before, paths[13:25]), (after, paths[25:38]), (after, paths[38:50])]
    answers = _race(committed_db.url, batches)

    assert len(answers) == 50 and {status for status, _ in answers} == {200}
    assert Counter((b["status"], b["reason"]) for _, b in answers) == {
        ("approved", None): 20,
        ("rejected", "cap_reached"): 30,
    }
    with committed_db.session_scope() as session:
        rows = session.scalars(select(Conversion)).all()
        per_day = Counter((row.created_at.date(), row.status) for row in rows)
        assert per_day == {
            (before.date(), "approved"): 10,
            (before.date(), "rejected"): 15,
            (after.date(), "approved"): 10,
            (after.date(), "rejected"): 15,
        }
        counters = {row.period_start: row.used for row in session.scalars(select(CapCounter))}
        assert counters == {
            dt.datetime(2026, 3, 10, tzinfo=UTC): 10,
            dt.datetime(2026, 3, 11, tzinfo=UTC): 10,
        }
        check_invariants(session, SECRET)
