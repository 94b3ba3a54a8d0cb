"""Click ids, reading clicks back (buffered or written), the snapshot's query count, impressions, IP purge."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import event, select

from network.tracking import jobs, service
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, ImpressionCount
from network.tracking.writer import PendingClick
from tests.tracking.conftest import BROWSER, GOOGLEBOT

CODEC = ClickIdCodec("test-secret-key")


def _click_id(client, code: str, **headers: str) -> str:
    r = client.get(f"/c/{code}", headers={"User-Agent": BROWSER, **headers})
    assert r.status_code == 302
    return parse_qs(urlsplit(r.headers["Location"]).query)["cid"][0]


def test_forged_truncated_and_other_key_click_ids_are_refused(client, session, world):
    link = world.link(session)
    good = _click_id(client, link.code)
    assert CODEC.verify(good).link_id == link.id
    raw = bytearray(base64.urlsafe_b64decode(good + "="))
    raw[2] ^= 1  # another link id, same MAC
    forged = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    other_key = ClickIdCodec("another-secret").issue(link.id, dt.datetime.now(dt.UTC))
    for bad in (forged, good[:-1], good[:20], good + "A", other_key, "", "x" * 47, good.upper(), "é" * 47):
        assert CODEC.verify(bad) is None, bad
        assert service.get_click(session, bad) is None


def test_get_click_finds_buffered_then_written_clicks(client, session, world):
    link = world.link(session)
    click_id = _click_id(client, link.code)
    bot_id = _click_id(client, link.code, **{"User-Agent": GOOGLEBOT})
    buffered = service.get_click(session, click_id)
    assert isinstance(buffered, PendingClick)
    assert (buffered.link_id, buffered.offer_id, buffered.partner_id) == (link.id, world.offer.id, world.partner.id)
    assert buffered.is_unique and not buffered.is_bot and buffered.device == "desktop" and buffered.ip == "127.0.0.1"
    assert service.get_click(session, bot_id).is_bot
    assert session.get(Click, click_id) is None
    assert service.flush_clicks() == 2
    written = service.get_click(session, click_id)
    assert isinstance(written, Click)
    assert (written.created_at, written.visitor, written.is_unique) == (
        buffered.created_at,
        buffered.visitor,
        True,
    )
    assert written.created_at == CODEC.verify(click_id).clicked_at


def test_a_warm_click_makes_no_database_query(app, client, session, world, tracker, engine):
    link = world.link(session)
    # As in production, but never stale within the test (production checks every 0.5 s).
    tracker.snapshots.max_age = 3600
    tracker.snapshots.trust_fingerprint = True
    assert client.get(f"/c/{link.code}").status_code == 302  # warms the snapshot
    # An unknown code is looked up once (it may be a link made since the last reload), then remembered.
    assert client.get("/c/unknown").status_code == 404
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        for query in ("", "?sub1=a&utm_source=b", "?url=https://shop.example/x"):
            assert client.get(f"/c/{link.code}{query}", headers={"User-Agent": BROWSER}).status_code == 302
        assert client.get(f"/i/{link.code}").status_code == 200
        assert client.get("/c/unknown").status_code == 404
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []
    assert tracker.writer.pending_count() == 4  # recorded, only not written yet
    tracker.snapshots.invalidate()
    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get(f"/c/{link.code}")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    queries = [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]
    assert len(queries) == 1 and "count(*)" in queries[0]  # a stale snapshot asks one fingerprint query


def test_impressions_answer_a_gif_and_count_per_link_and_day(client, session, world, frozen_clock):
    link = world.link(session)
    other = world.link(session)
    frozen_clock(dt.datetime(2026, 5, 1, 23, 59, tzinfo=dt.UTC))
    for _ in range(3):
        r = client.get(f"/i/{link.code}", headers={"User-Agent": BROWSER})
        assert r.status_code == 200 and r.mimetype == "image/gif" and r.data.startswith(b"GIF89a")
    client.get(f"/i/{link.code}", headers={"User-Agent": GOOGLEBOT})  # not counted
    client.head(f"/i/{link.code}")  # not counted
    client.get(f"/i/{other.code}", headers={"User-Agent": BROWSER})
    service.flush_clicks()
    frozen_clock(dt.datetime(2026, 5, 2, 0, 1, tzinfo=dt.UTC))
    client.get(f"/i/{link.code}", headers={"User-Agent": BROWSER})
    service.flush_clicks()
    client.get(f"/i/{link.code}", headers={"User-Agent": BROWSER})
    service.flush_clicks()
    assert client.get("/i/unknown").status_code == 404
    rows = session.execute(
        select(ImpressionCount.link_id, ImpressionCount.day, ImpressionCount.count).order_by(
            ImpressionCount.link_id, ImpressionCount.day
        )
    ).all()
    assert [tuple(r) for r in rows] == [
        (link.id, dt.date(2026, 5, 1), 3),
        (link.id, dt.date(2026, 5, 2), 2),
        (other.id, dt.date(2026, 5, 1), 1),
    ]


def test_purge_nulls_raw_ips_after_the_retention_window(client, session, world, frozen_clock):
    link = world.link(session)
    frozen_clock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    old = _click_id(client, link.code)
    frozen_clock(dt.datetime(2026, 1, 25, tzinfo=dt.UTC))
    recent = _click_id(client, link.code)
    service.flush_clicks()
    purged = jobs.purge_click_ips(session, now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), retention_days=30)
    assert purged == 1
    session.expire_all()
    assert session.get(Click, old).ip is None and session.get(Click, old).visitor
    assert session.get(Click, recent).ip == "127.0.0.1"
    assert jobs.purge_click_ips(session, now=dt.datetime(2026, 2, 1, tzinfo=dt.UTC), retention_days=30) == 0


@pytest.mark.parametrize("method", ["get", "head"])
def test_hot_path_needs_no_api_key(client, session, world, method):
    link = world.link(session)
    assert getattr(client, method)(f"/c/{link.code}").status_code == 302
