"""Clicks not yet written are found through the tracking service, in the writers the apps registered."""

from __future__ import annotations

import datetime as dt
from typing import Any

from network.app import create_app
from network.clock import UTC
from network.tracking import service
from network.tracking.pending import PendingClick
from network.tracking.traffic import CountryResolver, VisitorHasher
from network.tracking.writer import ClickWriter
from tests.tracking.conftest import BROWSER


def _pending(link: Any, click_id: str) -> PendingClick:
    at = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    return PendingClick(click_id, link.id, link.offer_id, link.partner_id, at, ip="10.0.0.1", agent=BROWSER)


def test_only_the_writers_of_apps_are_asked_and_the_newest_test_app_replaces_the_older(
    settings, db, session, tracker, world
):
    link = world.link(session)
    loose = ClickWriter(db, hasher=VisitorHasher("s"), countries=CountryResolver(None, None), background=False)
    loose.add(_pending(link, "loose" + "x" * 27))
    assert service.buffered_click(session, "loose" + "x" * 27) is None  # no app registered it
    tracker.writer.add(_pending(link, "first" + "x" * 27))
    assert service.buffered_click(session, "first" + "x" * 27) is not None
    newer = create_app(settings, database=db).extensions["network.tracking"]
    newer.writer.add(_pending(link, "newer" + "x" * 27))
    assert service.buffered_click(session, "newer" + "x" * 27) is not None
    assert service.buffered_click(session, "first" + "x" * 27) is None  # an older test app's leftovers
    assert service.flush_clicks() == 1
    assert service.buffered_click(session, "newer" + "x" * 27) is None
