"""Link contexts kept for a moment: reused within max_age, read again after it, never kept in tests."""

from __future__ import annotations

import pytest

from network.auth import SYSTEM
from network.conversions import context
from network.conversions.context import ContextCache, read_context
from network.offers import service as offers
from tests.conversions.conftest import CPL, REVSHARE, make_shop


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_context_is_reused_for_max_age_then_read_again(client, session):
    shop = make_shop(session, client, events=[REVSHARE, CPL])
    clock = FakeMonotonic()
    cache = ContextCache(max_age=0.5, monotonic=clock)
    first = cache.get(session, shop.link.id, None)
    assert first is not None
    assert (first.offer_status, first.brand_token, first.model, first.partner_approved) == (
        "active", shop.token, "revshare", True,
    )  # fmt: skip
    assert cache.get(session, shop.link.id, "lead").model == "cpl"  # each event its own entry

    offers.change_status(session, SYSTEM, shop.offer.id, "pause")
    session.flush()
    clock.now += 0.4
    assert cache.get(session, shop.link.id, None) is first  # within max_age: as it was
    clock.now += 0.2
    again = cache.get(session, shop.link.id, None)
    assert again is not None and again.offer_status == "paused"


def test_while_a_stale_context_is_read_again_other_requests_keep_the_last_one(client, session, monkeypatch):
    shop = make_shop(session, client, events=[CPL])
    clock = FakeMonotonic()
    cache = ContextCache(max_age=0.5, monotonic=clock)
    first = cache.get(session, shop.link.id, None)
    offers.change_status(session, SYSTEM, shop.offer.id, "pause")
    session.flush()
    clock.now += 0.7  # stale (max_age 0.5), and younger than twice max_age
    reads: list[int] = []
    during: list[object] = []

    def reading(session, link_id, event):  # type: ignore[no-untyped-def]
        reads.append(link_id)
        if len(reads) == 1:
            during.append(cache.get(session, link_id, event))  # another request, while this one reads
        return read_context(session, link_id, event)

    monkeypatch.setattr(context, "read_context", reading)
    again = cache.get(session, shop.link.id, None)
    assert reads == [shop.link.id]  # one read, not one per request
    assert during == [first]  # meanwhile: the last context
    assert again is not None and again.offer_status == "paused"
    assert cache.get(session, shop.link.id, None) is again  # and the new one from then on

    # An entry older than twice max_age is not kept meanwhile: the others read it too.
    offers.change_status(session, SYSTEM, shop.offer.id, "activate")
    session.flush()
    clock.now += 1.5
    reads.clear()
    during.clear()
    fresh = cache.get(session, shop.link.id, None)
    assert reads == [shop.link.id, shop.link.id]
    assert during[0] is not None and during[0].offer_status == "active" and fresh.offer_status == "active"
    monkeypatch.setattr(context, "read_context", read_context)
    # The request that read it too left the first reader's mark alone: no request is left waiting on it.
    clock.now += 1
    assert cache.get(session, shop.link.id, None) is not fresh
    clock.now += 1

    def failing(*_: object) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(context, "read_context", failing)
    with pytest.raises(RuntimeError):
        cache.get(session, shop.link.id, None)
    monkeypatch.setattr(context, "read_context", read_context)
    # A read that failed leaves no request waiting on it: the next one reads again.
    assert cache.get(session, shop.link.id, None) is not again


def test_without_max_age_every_get_reads(client, session):
    shop = make_shop(session, client, events=[CPL])
    cache = ContextCache(max_age=0)
    assert cache.get(session, shop.link.id, None).offer_status == "active"
    offers.change_status(session, SYSTEM, shop.offer.id, "pause")
    session.flush()
    assert cache.get(session, shop.link.id, None).offer_status == "paused"


def test_unknown_links_and_events(client, session):
    shop = make_shop(session, client, events=[CPL])
    assert read_context(session, 999_999, None) is None
    unknown_event = read_context(session, shop.link.id, "nope")
    assert unknown_event is not None and unknown_event.event_id is None and unknown_event.model is None
