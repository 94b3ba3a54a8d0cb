"""The click writer past a row the database refuses, an outage and a shutdown (RELIABILITY.md 27, 28).

A refused click or impression count is kept as a dead letter and the rest of its batch written at once;
a database that goes away and comes back costs nothing; the shutdown flush writes everything.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from network import db as db_module
from network.clock import UTC
from network.db import Database
from network.tracking.models import Click, ImpressionCount
from network.tracking.traffic import CountryResolver, VisitorHasher
from network.tracking.writer import ClickWriter, PendingClick
from tests.conftest import PG_ADMIN_URL
from tests.deadletters.support import Proxy, letters
from tests.factories import make_brand, make_offer, make_partner
from tests.rollups.support import check_rollups
from tests.tracking.conftest import BROWSER

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
MISSING_LINK = 2_000_000_000


@pytest.fixture
def link(committed_db: Database) -> Any:
    from tests.conversions.conftest import make_link

    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand)
        return make_link(session, offer=offer, partner=partner)


def _writer(database: Database, **kwargs: Any) -> ClickWriter:
    kwargs.setdefault("background", False)
    return ClickWriter(database, hasher=VisitorHasher("s"), countries=CountryResolver(None, None), **kwargs)


def _click(link: Any, n: int, **fields: Any) -> PendingClick:
    values: dict[str, Any] = {
        "id": f"c{uuid.uuid4().hex}",
        "link_id": link.id,
        "offer_id": link.offer_id,
        "partner_id": link.partner_id,
        "created_at": NOW + dt.timedelta(milliseconds=n),
        "sub1": f"s{n}",
        "ip": f"10.0.{n // 250}.{n % 250}",
        "agent": BROWSER,
    }
    values.update(fields)
    return PendingClick(**values)


def _clicks(database: Database) -> int:
    with database.read_session() as session:
        return session.scalar(select(func.count()).select_from(Click)) or 0


#: A value each database refuses, put straight into the writer (the API would clean it first).
_REFUSED: dict[str, dict[str, Any]] = {
    "unknown-link": {"link_id": MISSING_LINK},
    "lone-surrogate": {"sub1": "bad\ud800"},
    "nul-byte": {"sub1": "bad\x00sub"},
    "country-too-long": {"country": "XYZ"},
}
#: How each refusal's reason starts (PostgreSQL names the SQLSTATE's class).
_REASONS = {
    "unknown-link": ("IntegrityError: FOREIGN KEY constraint failed", "ForeignKeyViolation: insert or update"),
    "lone-surrogate": ("UnicodeEncodeError",),
    "nul-byte": ("DataError: PostgreSQL text fields cannot contain NUL",),
    "country-too-long": ("StringDataRightTruncation: value too long",),
}


@pytest.mark.parametrize("kind", list(_REFUSED))
def test_one_refused_click_among_500_is_kept_and_the_499_are_written_at_once(committed_db, link, dialect, kind):
    if kind in ("nul-byte", "country-too-long") and dialect != "postgresql":
        pytest.skip("SQLite stores NUL bytes and ignores VARCHAR lengths")
    writer = _writer(committed_db)
    bad = 137
    for n in range(500):
        writer.add(_click(link, n, **(_REFUSED[kind] if n == bad else {})))

    assert writer.flush() == 499
    assert _clicks(committed_db) == 499
    assert writer.pending_count() == 0
    [(reason, row)] = letters(committed_db, "clicks")
    assert reason.startswith(_REASONS[kind]), reason
    assert row["sub1"] == _REFUSED[kind].get("sub1", f"s{bad}")
    assert "ip" not in row  # the raw IP stays only in the clicks table, for its fraud window
    with committed_db.session() as session:
        assert session.scalar(select(Click.id).where(Click.sub1 == f"s{bad}")) is None

    # The writer goes on: a later batch is written.
    for n in range(500, 510):
        writer.add(_click(link, n))
    assert writer.flush() == 10
    assert _clicks(committed_db) == 509
    assert writer.refused == 1
    with committed_db.session_scope() as session:
        check_rollups(session)


def test_one_refused_impression_count_among_500_is_kept_and_the_rest_counted(committed_db, link):
    writer = _writer(committed_db)
    for n in range(499):
        day = NOW.date() - dt.timedelta(days=n)
        writer.add_impression(link.id, link.offer_id, link.partner_id, day)
        writer.add_impression(link.id, link.offer_id, link.partner_id, day)
    writer.add_impression(MISSING_LINK, link.offer_id, link.partner_id, NOW.date())

    writer.flush()
    with committed_db.session() as session:
        counts = session.scalars(select(ImpressionCount.count)).all()
    assert len(counts) == 499 and set(counts) == {2}
    [(reason, row)] = letters(committed_db, "impressions")
    assert reason.startswith(_REASONS["unknown-link"]) and row["link_id"] == MISSING_LINK and row["count"] == 1

    writer.add_impression(link.id, link.offer_id, link.partner_id, NOW.date())
    writer.flush()
    with committed_db.session() as session:
        assert session.scalar(select(func.sum(ImpressionCount.count))) == 2 * 499 + 1


@pytest.fixture
def outage(committed_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Database, Any, Any]]:
    """A writer's database, and how to take it away and bring it back.

    PostgreSQL: through a TCP proxy that drops every connection. SQLite: another connection holding the
    write lock (SQLite's outage is "database is locked"), with a short busy timeout.
    """
    if PG_ADMIN_URL:
        proxy = Proxy(committed_db.engine.url.host or "127.0.0.1", committed_db.engine.url.port or 5432)
        database = Database(proxy.url(committed_db.url))
        try:
            yield database, proxy.cut, proxy.restore
        finally:
            proxy.close()
            database.dispose()
        return
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 50)
    database = Database(committed_db.url)
    holder = sqlite3.connect(committed_db.engine.url.database or "", isolation_level=None, check_same_thread=False)
    held: list[Any] = []

    def cut() -> None:
        holder.execute("BEGIN EXCLUSIVE")
        held.append(True)

    def restore() -> None:
        if held:
            holder.execute("ROLLBACK")
            held.clear()

    try:
        yield database, cut, restore
    finally:
        restore()
        holder.close()
        database.dispose()


def _wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_database_outage_during_flushes_loses_no_click_once_it_is_back(outage, committed_db, link):
    database, cut, restore = outage
    writer = _writer(database, background=True, interval=0.02)
    failures: list[int] = []
    original = writer.flush

    def counted_flush() -> int:
        try:
            return original()
        except Exception:
            failures.append(1)
            raise

    writer.flush = counted_flush  # type: ignore[method-assign]
    try:
        for n in range(200):
            writer.add(_click(link, n))
        _wait_for(lambda: _clicks(committed_db) == 200)
        cut()
        for n in range(200, 700):
            writer.add(_click(link, n))
        _wait_for(lambda: len(failures) >= 2)  # flushes fail meanwhile, and are retried
        assert writer.pending_count() == 500
        restore()
        _wait_for(lambda: _clicks(committed_db) == 700)
        assert writer.pending_count() == 0
        assert letters(committed_db, "clicks") == []  # an outage is no refusal
        with committed_db.session_scope() as session:
            check_rollups(session)
    finally:
        restore()
        writer.close()


def test_the_shutdown_flush_writes_everything_also_after_a_short_outage(outage, committed_db, link):
    database, cut, restore = outage
    writer = _writer(database, background=True, interval=60.0)
    for n in range(300):
        writer.add(_click(link, n))
    writer.add_impression(link.id, link.offer_id, link.partner_id, NOW.date())
    assert _clicks(committed_db) == 0  # nothing flushed yet: the interval is long, the batch not full
    cut()
    threading.Timer(0.5, restore).start()
    writer.close()
    assert _clicks(committed_db) == 300
    with committed_db.session() as session:
        assert session.scalar(select(func.sum(ImpressionCount.count))) == 1
    assert writer.pending_count() == 0


def test_the_dead_letter_table_being_unwritable_does_not_stop_the_writer(committed_db, link, caplog):
    writer = _writer(committed_db)
    with committed_db.engine.begin() as conn:
        conn.execute(text("DROP TABLE dead_letters"))
    try:
        writer.add(_click(link, 0, link_id=MISSING_LINK))
        writer.add(_click(link, 1))
        assert writer.flush() == 1
        assert _clicks(committed_db) == 1
        assert any("could not keep 1 dead letters of clicks" in r.getMessage() for r in caplog.records)
    finally:
        from network.deadletters.models import DeadLetter

        DeadLetter.__table__.create(committed_db.engine)  # type: ignore[attr-defined]
