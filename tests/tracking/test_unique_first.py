"""The unique flag goes to the visitor's first click by time, whichever process (writer) wrote it."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from sqlalchemy import select

from network.clock import UTC
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, ClickVisitor, Link
from network.tracking.pending import PendingClick
from network.tracking.rules import UniqueCall, unique_call
from network.tracking.traffic import CountryResolver, VisitorHasher
from network.tracking.writer import ClickWriter
from tests.factories import make_brand, make_offer, make_partner
from tests.tracking.conftest import BROWSER

T = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
H = dt.timedelta(hours=1)
W = dt.timedelta(hours=24)
CODEC = ClickIdCodec("test-secret-key")


@pytest.mark.parametrize(
    ("at", "start", "previous", "call"),
    [
        (T + W, T, None, UniqueCall(True, (T + W, T))),  # the window ended: the next opens
        (T + W - dt.timedelta(microseconds=1), T, None, UniqueCall(False)),
        (T, T, None, UniqueCall(False)),
        # An older click a slower writer brings takes the window; the click at its start loses the flag.
        (T - H, T, None, UniqueCall(True, (T - H, None), unmark_start=True)),
        (T - H, T, T - 30 * H, UniqueCall(True, (T - H, T - 30 * H), unmark_start=True)),
        # ...unless it lies inside the window before.
        (T - H, T, T - 20 * H, UniqueCall(False)),
        (T - 40 * H, T, T - 30 * H, UniqueCall(False)),
        # A whole window older: both are the first of their windows.
        (T - W, T, None, UniqueCall(True, (T, T - W))),
        (T - 30 * H, T, T - 60 * H, UniqueCall(True, (T, T - 30 * H))),
    ],
)
def test_unique_call(at, start, previous, call):
    assert unique_call(at, start, previous, W) == call


def _writer(database: Any) -> ClickWriter:
    return ClickWriter(database, hasher=VisitorHasher("s"), countries=CountryResolver(None, None), background=False)


def _click(link: Link, at: dt.datetime, ip: str = "81.2.69.160") -> PendingClick:
    return PendingClick(CODEC.issue(link.id, at), link.id, link.offer_id, link.partner_id, at, ip=ip, agent=BROWSER)


def _setup(database: Any) -> Link:
    with database.session_scope() as session:
        offer = make_offer(session, brand=make_brand(session))
        link = Link(code="uniq", offer_id=offer.id, partner_id=make_partner(session).id)
        session.add(link)
        session.flush()
        session.expunge(link)
        return link


def _unique(database: Any) -> dict[str, bool]:
    with database.session_scope() as session:
        return {row.id: row.is_unique for row in session.execute(select(Click.id, Click.is_unique))}


def test_an_older_click_flushed_later_by_another_writer_takes_the_flag(committed_db):
    link = _setup(committed_db)
    early, late = _click(link, T), _click(link, T + H)
    first, second = _writer(committed_db), _writer(committed_db)
    first.add(late)
    first.flush()
    assert _unique(committed_db) == {late.id: True}
    second.add(early)
    second.flush()
    assert _unique(committed_db) == {early.id: True, late.id: False}
    with committed_db.session_scope() as session:
        (window,) = session.scalars(select(ClickVisitor)).all()
        assert (window.window_start, window.previous_start) == (T, None)
    # The first writer learned a window that moved back: its next click a day after `early` is
    # unique although it lies within a day of `late`, the start it saw.
    first._windows_since -= 3600  # what it learned is no longer trusted
    again = _click(link, T + W + H // 2)
    first.add(again)
    first.flush()
    assert _unique(committed_db)[again.id] is True


@pytest.mark.postgres_only
def test_two_writers_flushing_at_once_flag_only_each_visitors_first_click(committed_db, dialect):
    if dialect != "postgresql":
        pytest.skip("two writers at once need PostgreSQL")
    link = _setup(committed_db)
    visitors = [f"81.2.69.{n}" for n in range(1, 41)]
    writers = [_writer(committed_db), _writer(committed_db)]
    first_ids = set()
    for n, ip in enumerate(visitors):
        # Each visitor's first click goes to one writer, its second (a second later) to the other.
        early, late = _click(link, T + dt.timedelta(seconds=n), ip), _click(link, T + dt.timedelta(seconds=n + 1), ip)
        writers[n % 2].add(early)
        writers[(n + 1) % 2].add(late)
        first_ids.add(early.id)
    gate = threading.Barrier(2)
    failures: list[BaseException] = []

    def flush(writer: ClickWriter) -> None:
        try:
            gate.wait()
            writer.flush()
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=flush, args=(w,)) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    flags = _unique(committed_db)
    assert len(flags) == 2 * len(visitors)
    assert {click_id for click_id, unique in flags.items() if unique} == first_ids
