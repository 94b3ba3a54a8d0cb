"""Conversion caps: per offer and per partner, conversions and payout, in UTC periods."""

from __future__ import annotations

import datetime as dt

import pytest

from network.clock import UTC
from network.offers import caps
from network.offers.models import Cap
from tests.conversions.conftest import CPL, REVSHARE, conversions, make_click, make_link, make_shop, postback
from tests.factories import make_partner

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)


def _send(client, session, shop, link, at, **params):
    click = make_click(session, link, at=at - HOUR)
    r = postback(client, click_id=click, token=shop.token, **params)
    assert r.status_code == 200, r.json
    return r.json["status"], r.json["reason"]


def test_daily_offer_cap_resets_at_utc_midnight(client, session, frozen_clock):
    shop = make_shop(session, client, events=[CPL], caps=[{"metric": "conversions", "period": "day", "limit": 2}])
    day1 = dt.datetime(2026, 3, 10, 23, 59, 58, tzinfo=UTC)
    frozen_clock(day1)
    verdicts = [_send(client, session, shop, shop.link, day1) for _ in range(3)]
    assert verdicts == [("approved", None), ("approved", None), ("rejected", "cap_reached")]
    day2 = dt.datetime(2026, 3, 11, 0, 0, 0, tzinfo=UTC)
    frozen_clock(day2)
    verdicts = [_send(client, session, shop, shop.link, day2) for _ in range(3)]
    assert verdicts == [("approved", None), ("approved", None), ("rejected", "cap_reached")]
    (cap,) = shop.offer.caps
    assert caps.used(session, cap, at=day1) == 2 and caps.used(session, cap, at=day2) == 2
    # A rejected one is worth nothing, and carries no flags or hold.
    rejected = conversions(session, status="rejected")
    assert [(c.payout_minor, c.revenue_minor, c.hold_until) for c in rejected] == [(0, 0, None)] * 2


def test_partner_scoped_cap_counts_each_partner_alone(client, session, frozen_clock):
    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    frozen_clock(now)
    shop = make_shop(
        session,
        client,
        events=[CPL],
        caps=[{"metric": "conversions", "period": "week", "limit": 1, "scope": "partner"}],
    )
    second = make_link(session, offer=shop.offer, partner=make_partner(session, name="Second"))
    assert _send(client, session, shop, shop.link, now) == ("approved", None)
    assert _send(client, session, shop, shop.link, now) == ("rejected", "cap_reached")
    assert _send(client, session, shop, second, now) == ("approved", None)
    # Next ISO week (Monday 2026-03-16).
    frozen_clock(dt.datetime(2026, 3, 16, tzinfo=UTC))
    assert _send(client, session, shop, shop.link, dt.datetime(2026, 3, 16, tzinfo=UTC)) == ("approved", None)


def test_payout_cap_and_conversion_cap_are_taken_together_or_not_at_all(client, session, frozen_clock):
    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    frozen_clock(now)
    shop = make_shop(
        session,
        client,
        events=[REVSHARE],
        caps=[
            {"metric": "conversions", "period": "month", "limit": 10},
            {"metric": "payout", "period": "lifetime", "limit": "10.00"},
        ],
    )
    assert _send(client, session, shop, shop.link, now, amount="60.00") == ("approved", None)  # payout 6.00
    # 6.00 + 5.00 > 10.00: refused, and the conversions cap it passed first is given back.
    assert _send(client, session, shop, shop.link, now, amount="50.00") == ("rejected", "cap_reached")
    assert _send(client, session, shop, shop.link, now, amount="40.00") == ("approved", None)  # exactly 10.00
    assert _send(client, session, shop, shop.link, now, amount="0.01") == ("approved", None)  # payout rounds to 0
    conv_cap, payout_cap = sorted(shop.offer.caps, key=lambda c: c.id)
    assert caps.used(session, conv_cap, at=now) == 3
    assert caps.used(session, payout_cap, at=now) == 1000


def test_click_caps_are_not_conversion_caps(client, session, frozen_clock):
    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    frozen_clock(now)
    shop = make_shop(session, client, events=[CPL], caps=[{"metric": "clicks", "period": "day", "limit": 0}])
    assert _send(client, session, shop, shop.link, now) == ("approved", None)


def test_a_rejected_or_reversed_conversion_keeps_its_cap(client, session, frozen_clock):
    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    frozen_clock(now)
    shop = make_shop(session, client, events=[CPL], caps=[{"metric": "conversions", "period": "day", "limit": 1}])
    assert _send(client, session, shop, shop.link, now, txn_id="r1") == ("approved", None)
    postback(client, txn_id="r1", status="reversed", token=shop.token)
    assert _send(client, session, shop, shop.link, now) == ("rejected", "cap_reached")
    cap = session.get(Cap, shop.offer.caps[0].id)
    assert caps.used(session, cap, at=now) == 1


def test_a_conversion_past_its_cap_leaves_only_its_rejection(client, session, frozen_clock):
    from sqlalchemy import select

    from network.conversions.models import ConversionHistory, PostbackLog
    from network.deliveries.models import PostbackDelivery
    from network.payouts.models import LedgerEntry

    now = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
    frozen_clock(now)
    shop = make_shop(session, client, events=[CPL], caps=[{"metric": "conversions", "period": "day", "limit": 1}])
    shop.partner.postback_url = "https://partner.example/cb?c={click_id}&s={status}"
    session.flush()
    assert _send(client, session, shop, shop.link, now) == ("approved", None)
    assert _send(client, session, shop, shop.link, now) == ("rejected", "cap_reached")
    first, second = conversions(session)
    # What was written for it before the cap said no (history, ledger, outbox, log) is gone.
    history = session.execute(select(ConversionHistory.conversion_id, ConversionHistory.new_status)).all()
    assert sorted(history) == [(first.id, "approved"), (second.id, "rejected")]
    assert session.scalars(select(LedgerEntry.conversion_id)).all() == [first.id]
    outbox = session.execute(select(PostbackDelivery.conversion_id, PostbackDelivery.new_status)).all()
    assert sorted(outbox) == [(first.id, "approved"), (second.id, "rejected")]
    log = session.execute(select(PostbackLog.conversion_id, PostbackLog.status).order_by(PostbackLog.id)).all()
    assert log == [(first.id, "approved"), (second.id, "rejected")]
