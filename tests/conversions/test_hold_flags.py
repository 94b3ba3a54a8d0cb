"""Which fraud flags hold a conversion for review: the offer's setting, its rule, its API and its evidence."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from network.clock import UTC
from network.conversions import rules
from network.conversions.jobs import mature_holds
from network.offers import rules as offer_rules
from tests.conversions.conftest import CPL, NOW, conversions, make_click, make_shop, postback

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
T = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OK = rules.Facts(now=T, clicked_at=T - HOUR)


# ---- the pure rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "hold_flags", "hold_days", "expected"),
    [
        ([], rules.HOLD_FLAGS, 0, ("approved", None)),
        (["repeat_visitor"], rules.HOLD_FLAGS, 0, ("approved", None)),
        (["repeat_visitor"], rules.HOLD_FLAGS, 2, ("pending", T + 2 * DAY)),
        (["bot"], rules.HOLD_FLAGS, 2, ("pending", None)),
        (["self_referral"], rules.HOLD_FLAGS, 0, ("pending", None)),
        (["anomaly"], rules.HOLD_FLAGS, 0, ("pending", None)),
        (["pixel"], rules.HOLD_FLAGS, 0, ("pending", None)),
        (["bot"], frozenset(), 0, ("approved", None)),
        (["bot", "repeat_visitor"], frozenset({"repeat_visitor"}), 0, ("pending", None)),
        (["too_fast"], frozenset({"bot"}), 3, ("pending", T + 3 * DAY)),
    ],
)
def test_first_status_holds_only_for_the_offers_hold_flags(flags, hold_flags, hold_days, expected):
    assert rules.first_status(None, flags, hold_days, T, hold_flags) == expected


def test_the_default_holds_every_flag_but_the_repeat_visitors():
    assert frozenset(rules.FLAGS) - {"repeat_visitor"} == rules.HOLD_FLAGS
    assert offer_rules.hold_flags(None) == ["too_fast", "bot", "pixel", "self_referral", "anomaly"]
    assert offer_rules.hold_flags(["anomaly", "bot", "bot"]) == ["bot", "anomaly"]
    assert offer_rules.hold_flags([]) == []


@pytest.mark.parametrize(
    ("changes", "evidence"),
    [
        ({}, {}),
        ({"click_is_bot": True}, {"bot": {"click_is_bot": True}}),
        ({"click_is_unique": False}, {"repeat_visitor": {"click_is_unique": False}}),
        ({"pixel": True}, {"pixel": {"source": "pixel"}}),
        (
            {"min_seconds": 60, "clicked_at": T - dt.timedelta(seconds=90)},
            {"too_fast": {"seconds": 90, "min_seconds": 60, "flagged_under_seconds": 120}},
        ),
        (
            {"self_referral": {"address": "203.0.113.7", "last_seen": "2026-03-10T11:00:00+00:00"}},
            {"self_referral": {"address": "203.0.113.7", "last_seen": "2026-03-10T11:00:00+00:00"}},
        ),
    ],
)
def test_each_flag_carries_its_evidence(changes, evidence):
    facts = dataclasses.replace(OK, **changes)
    assert rules.evidence(facts, rules.fraud_flags(facts)) == evidence
    assert sorted(rules.fraud_flags(facts)) == sorted(evidence)


# ---- through postbacks ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def test_a_repeat_visitor_is_flagged_and_approved_by_default(client, session):
    shop = make_shop(session, client, events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR, is_unique=False)
    r = postback(client, click_id=click, token=shop.token).json
    assert r["status"] == "approved"
    (row,) = conversions(session)
    assert (row.flags, row.evidence) == (["repeat_visitor"], {"repeat_visitor": {"click_is_unique": False}})
    out = shop.brand_api.get(f"/api/v1/conversions/{row.id}").json
    assert out["flags"] == ["repeat_visitor"] and out["evidence"] == {"repeat_visitor": {"click_is_unique": False}}
    assert "evidence" not in shop.partner_api.get(f"/api/v1/conversions/{row.id}").json


def test_an_offer_that_holds_repeat_visitors_holds_them_and_one_that_holds_nothing_approves_a_bot(client, session):
    shop = make_shop(session, client, events=[CPL], hold_flags=["repeat_visitor"], hold_days=2)
    click = make_click(session, shop.link, at=NOW - HOUR, is_unique=False)
    assert postback(client, click_id=click, token=shop.token).json["status"] == "pending"
    bot = make_click(session, shop.link, at=NOW - HOUR, is_bot=True)
    assert postback(client, click_id=bot, token=shop.token).json["status"] == "pending"
    held, bot_row = conversions(session)
    assert (held.flags, held.hold_until) == (["repeat_visitor"], None)  # review: never matured
    # The bot's flag is shown but not held for: it waits for the offer's hold only.
    assert (bot_row.flags, bot_row.hold_until) == (["bot"], NOW + 2 * DAY)
    assert mature_holds(session, now=NOW + 3 * DAY) == 1
    assert [c.status for c in conversions(session)] == ["pending", "approved"]


def test_hold_flags_and_attribution_through_the_offers_api(client, session):
    shop = make_shop(session, client, events=[CPL])
    api = shop.brand_api
    r = api.get(f"/api/v1/offers/{shop.offer.id}").json
    assert r["hold_flags"] == ["too_fast", "bot", "pixel", "self_referral", "anomaly"]
    assert r["attribution"] == "last_click"
    r = api.patch(f"/api/v1/offers/{shop.offer.id}", json={"hold_flags": ["bot", "repeat_visitor"],
                                                          "attribution": "first_click"})  # fmt: skip
    assert r.status_code == 200, r.json
    assert (r.json["hold_flags"], r.json["attribution"]) == (["bot", "repeat_visitor"], "first_click")
    for body, field in (
        ({"hold_flags": ["bot", "nope"]}, "hold_flags[1]"),
        ({"hold_flags": "bot"}, "hold_flags"),
        ({"attribution": "middle_click"}, "attribution"),
    ):
        r = api.patch(f"/api/v1/offers/{shop.offer.id}", json=body)
        assert r.status_code == 400 and field in r.json["errors"] and field in r.json["message"], r.json
    # Partners see neither.
    seen = shop.partner_api.get(f"/api/v1/offers/{shop.offer.id}").json
    assert "hold_flags" not in seen and "attribution" not in seen
    # An offer that holds repeat visitors now holds them.
    click = make_click(session, shop.link, at=NOW - HOUR, is_unique=False)
    assert postback(client, click_id=click, token=shop.token).json["status"] == "pending"
