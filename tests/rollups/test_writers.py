"""The writers mark the hours they change, in their own transaction: clicks flushed from the buffer,
late ones included, postbacks and status changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.orm import Session

from network.rollups.models import CLICKS, CONVERSIONS
from network.tracking.clickid import ClickIdCodec
from network.tracking.pending import PendingClick
from tests.reports.conftest import World, add_conversion, make_link
from tests.rollups.support import check_rollups, close_hours, mark_counts

UTC = dt.UTC
H = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def test_a_click_flush_marks_its_hour_in_its_transaction(
    app: Any, session: Session, world: World, frozen_clock: Any
) -> None:
    writer = app.extensions["network.tracking"].writer
    link = make_link(session, offer=world.offer, partner=world.partner, sub1="default")
    click_id = ClickIdCodec("test-secret-key").issue(link.id, H + dt.timedelta(minutes=5))
    frozen_clock(H + dt.timedelta(minutes=5, seconds=1))
    writer.add(
        PendingClick(
            click_id, link.id, link.offer_id, link.partner_id, H + dt.timedelta(minutes=5), ip="10.0.0.1", agent=BROWSER
        )
    )
    assert writer.flush() == 1
    assert mark_counts(session) == {(H, CLICKS): 1, (H, CONVERSIONS): 1}
    check_rollups(session)


def test_a_click_written_after_its_conversion_was_rolled_up_rolls_that_hour_up_again(
    app: Any, session: Session, world: World, frozen_clock: Any
) -> None:
    writer = app.extensions["network.tracking"].writer
    link = make_link(session, offer=world.offer, partner=world.partner, sub1="default")
    clicked = H + dt.timedelta(minutes=59)
    click_id = ClickIdCodec("test-secret-key").issue(link.id, clicked)
    writer.add(
        PendingClick(
            click_id, link.id, link.offer_id, link.partner_id, clicked, ip="10.0.0.1", agent=BROWSER, sub1="own"
        )
    )
    # The conversion comes in the next hour while the click is still buffered: the link's sub ids, no country.
    add_conversion(session, link, when=H + dt.timedelta(hours=1, minutes=1), click_id=click_id)
    close_hours(session)
    # Hours later the click is written: the conversion's hour is marked again and takes the click's sub ids.
    frozen_clock(H + dt.timedelta(hours=3))
    assert writer.flush() == 1
    assert (H + dt.timedelta(hours=1), CONVERSIONS) in mark_counts(session)
    check_rollups(session)
