"""A link works the moment it is made, in every process; unknown codes cost one query each, briefly."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select

from network.app import create_app
from network.cache import Cache
from network.db import Database
from network.tracking.models import Click
from network.tracking.snapshot import SNAPSHOT, Snapshot, SnapshotCache
from tests.factories import Api, make_brand, make_key, make_offer, make_partner
from tests.tracking.conftest import BROWSER


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def other(settings, db, clock):  # type: ignore[no-untyped-def]
    """A second app (as another worker process) whose snapshot is loaded now and not reloaded by age."""
    app = create_app(settings, database=db)
    tracker = app.extensions["network.tracking"]
    tracker.snapshots = SnapshotCache(db, max_age=3600.0, monotonic=clock)
    tracker.snapshots.get()
    return app


@contextmanager
def counted(db) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Collect every query sent meanwhile (not the test transaction's savepoints)."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def _click(app: Any, code: str) -> Any:
    return app.test_client().get(f"/c/{code}", headers={"User-Agent": BROWSER})


def test_a_link_made_through_the_api_is_clicked_at_once_in_another_process(db, session, client, other, clicks):
    # Brand, offer, partner and link are all newer than the other process's snapshot.
    brand = make_brand(session)
    offer = make_offer(session, brand=brand)
    partner = make_partner(session)
    partner_api = Api(client, make_key(session, role="partner", partner=partner))
    session.flush()
    r = partner_api.post("/api/v1/links", json={"offer_id": offer.id, "sub1": "spring"})
    assert r.status_code == 201, r.json
    code = r.json["code"]
    assert code not in other.extensions["network.tracking"].snapshots.get().links

    answer = _click(other, code)
    assert answer.status_code == 302, answer.data
    assert answer.headers["Location"].startswith("https://shop.example/landing?cid=")
    [row] = clicks()
    assert row.link_id == r.json["id"] and row.offer_id == offer.id and row.partner_id == partner.id
    assert row.sub1 == "spring"
    # Kept in the snapshot: the next click asks the database nothing.
    with counted(db) as statements:
        assert _click(other, code).status_code == 302
    assert statements == []
    assert other.test_client().get(f"/i/{code}").status_code == 200


def test_an_impression_of_a_new_link_counts_at_once(db, session, client, other, world):
    r = world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id})
    assert r.status_code == 201
    answer = other.test_client().get(f"/i/{r.json['code']}", headers={"User-Agent": BROWSER})
    assert answer.status_code == 200 and answer.mimetype == "image/gif"


def test_new_links_of_archived_offers_or_unapproved_partners_stay_404(db, session, other, world, clicks):
    """RELIABILITY.md case 1, for links the snapshot has not seen yet."""
    archived = world.link(session, offer=make_offer(session, brand=world.brand, status="archived"))
    not_approved = world.link(session, offer=make_offer(session, brand=world.brand, visibility="approval"))
    private = world.link(session, offer=make_offer(session, brand=world.brand, visibility="private"))
    suspended = world.link(session, partner=make_partner(session, name="Gone", status="suspended"))
    codes = [link.code for link in (archived, not_approved, private, suspended)]
    for code in codes:
        assert _click(other, code).status_code == 404, code
    assert session.scalars(select(Click)).all() == [] and clicks() == []
    # Each was looked up once and is known now: asking again costs nothing.
    with counted(db) as statements:
        for code in codes:
            assert _click(other, code).status_code == 404
    assert statements == []


def test_a_flood_of_unknown_codes_costs_one_query_per_code_until_forgotten(db, session, other, clock, world):
    tracker = other.extensions["network.tracking"]
    codes = [f"nope{i}" for i in range(20)]
    with counted(db) as statements:
        for _ in range(10):
            for code in codes:
                assert _click(other, code).status_code == 404
    assert len(statements) == len(codes)  # one look each, in 200 clicks
    assert all("FROM links" in s for s in statements)
    # Not a code the network could have made (too long, other characters): no query at all.
    with counted(db) as statements:
        for code in ("A" * 33, "a.b", "%00", "x y"):
            assert _click(other, code).status_code == 404
    assert statements == []
    # Forgotten after the ttl: asked once more (a code made meanwhile would be found).
    clock.now += tracker.snapshots.unknown.miss_age + 0.1
    with counted(db) as statements:
        for _ in range(3):
            assert _click(other, codes[0]).status_code == 404
    assert len(statements) == 1


def test_a_code_made_after_it_was_found_unknown_works_once_the_ttl_passed(db, session, other, clock, world):
    tracker = other.extensions["network.tracking"]
    assert _click(other, "latecode").status_code == 404
    world.link(session).code = "latecode"
    session.flush()
    assert _click(other, "latecode").status_code == 404  # remembered as unknown: no query
    clock.now += tracker.snapshots.unknown.miss_age + 0.1
    assert _click(other, "latecode").status_code == 302


def test_unknown_codes_are_bounded_oldest_forgotten_first(clock):
    unknown: Cache[str, None] = Cache(max_age=0, miss_age=5.0, size=100, monotonic=clock)
    for i in range(1000):
        unknown.put(f"c{i}", None)
        assert len(unknown) <= 100
    assert not unknown.has_fresh("c0") and not unknown.has_fresh("c899")
    assert all(unknown.has_fresh(f"c{i}") for i in range(900, 1000))
    clock.now += 5.0
    assert not unknown.has_fresh("c999")
    unknown.put("fresh", None)
    assert len(unknown) == 1  # expired ones are dropped as new ones come


def test_the_bound_holds_through_the_redirect(db, session, other, world):
    tracker = other.extensions["network.tracking"]
    tracker.snapshots.unknown.size = 50
    for i in range(120):
        assert _click(other, f"flood{i}").status_code == 404
    assert len(tracker.snapshots.unknown) == 50


def test_a_link_committed_after_a_later_one_was_loaded_is_found(db, session, other, world):
    """On PostgreSQL ids are drawn before commit: a link may appear below the highest id already loaded."""
    snapshots = other.extensions["network.tracking"].snapshots
    late, later = world.link(session).code, world.link(session).code
    session.flush()
    snapshots.reload()
    # As if `later` had been committed and loaded first, and `late` committed after that.
    old = snapshots.get()
    links = {code: view for code, view in old.links.items() if code != late}
    snapshots._cache.put(SNAPSHOT, Snapshot(links, old.offers, old.active_partners, old.approved))
    assert _click(other, late).status_code == 302
    assert late in snapshots.get().links and later in snapshots.get().links


def test_a_look_up_while_the_database_is_away_is_a_404_warned_once(other, tmp_path, caplog):
    snapshots = other.extensions["network.tracking"].snapshots
    away = Database(f"sqlite:///{tmp_path}/missing/dir/network.db")  # every connection fails
    snapshots.database = away
    try:
        with caplog.at_level(logging.WARNING, logger="network.tracking.snapshot"):
            for i in range(5):
                assert _click(other, f"away{i}").status_code == 404
    finally:
        away.dispose()
    warnings = [r for r in caplog.records if r.name == "network.tracking.snapshot"]
    assert len(warnings) == 1 and "404 meanwhile" in warnings[0].getMessage()
    assert all(snapshots.unknown.has_fresh(f"away{i}") for i in range(5))  # not asked again at once
