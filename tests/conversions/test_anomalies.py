"""Anomalies: a partner's conversion rate or time to convert far from its offer's median, flagged for review."""

from __future__ import annotations

import datetime as dt

import pytest

from network import scheduler
from network.clock import UTC
from network.conversions import anomaly_rules
from network.conversions.anomalies import flag_anomalies
from network.rollups.models import BY_OFFER_AND_PARTNER, RollupHour
from tests.conversions.conftest import CPL, NOW, conversions, make_click, make_link, make_shop, postback
from tests.factories import make_partner

T = dt.datetime(2026, 3, 10, tzinfo=UTC)
START = T - dt.timedelta(days=7)
HOUR = dt.timedelta(hours=1)


def figures(partner_id: int, clicks: int, conversions: int, seconds: float = 3600) -> anomaly_rules.PartnerFigures:
    return anomaly_rules.PartnerFigures(partner_id, clicks, (seconds,) * conversions)


def test_a_conversion_rate_far_above_the_median_is_an_anomaly():
    found = anomaly_rules.anomalies([figures(1, 100, 2), figures(2, 100, 3), figures(3, 100, 40)], start=START, end=T)
    assert found == {3: {"kind": "conversion_rate", "cr": "0.4000", "median": "0.0300",
                         "from": START.isoformat(), "to": T.isoformat()}}  # fmt: skip


@pytest.mark.parametrize(
    "partners",
    [
        [figures(1, 100, 2), figures(3, 100, 40)],  # two partners make no median
        [figures(1, 100, 2), figures(2, 100, 3), figures(3, 10, 9)],  # too few clicks to judge
        [figures(1, 100, 2), figures(2, 100, 3), figures(3, 100, 8)],  # under 3 times the median
        [figures(1, 100, 0), figures(2, 100, 0), figures(3, 100, 4)],  # too few conversions to judge
    ],
)
def test_what_is_no_anomaly(partners):
    assert anomaly_rules.anomalies(partners, start=START, end=T) == {}


def test_a_time_to_convert_far_below_the_median_is_an_anomaly():
    found = anomaly_rules.anomalies(
        [figures(1, 0, 5, 3600), figures(2, 0, 6, 7200), figures(3, 0, 5, 30)], start=START, end=T
    )
    assert found == {3: {"kind": "time_to_convert", "median_seconds": 30, "offer_median_seconds": 3600,
                         "from": START.isoformat(), "to": T.isoformat()}}  # fmt: skip


def test_the_job_flags_the_partners_conversions_for_review_and_never_rejects(client, session, frozen_clock):
    frozen_clock(NOW)
    shop = make_shop(session, client, events=[CPL])
    others = [make_link(session, offer=shop.offer, partner=make_partner(session, name=f"P{n}")) for n in range(2)]
    for link, clicks in ((shop.link, 100), (others[0], 100), (others[1], 100)):
        session.add(RollupHour(cube=BY_OFFER_AND_PARTNER, hour=NOW - 2 * HOUR, offer_id=shop.offer.id, partner_id=link.partner_id,
                               brand_id=shop.brand.id, currency="USD", clicks=clicks, unique_clicks=clicks,
                               pending=0, approved=0, rejected=0, reversed=0, sale_minor=0, revenue_minor=0,
                               payout_minor=0))  # fmt: skip
    for link, count in ((shop.link, 40), (others[0], 2), (others[1], 3)):
        for n in range(count):
            click = make_click(session, link, at=NOW - HOUR)
            postback(client, click_id=click, token=shop.token, txn_id=f"{link.id}-{n}")
    assert {c.status for c in conversions(session)} == {"approved"}
    assert flag_anomalies(session, now=NOW + HOUR) == 40
    assert flag_anomalies(session, now=NOW + HOUR) == 0  # once
    flagged = conversions(session, partner_id=shop.partner.id)
    assert {c.status for c in flagged} == {"approved"}  # never rejected; approved stays approved
    evidence = flagged[0].evidence["anomaly"]
    assert (flagged[0].flags, evidence["kind"], evidence["cr"], evidence["median"]) == (
        ["anomaly"],
        "conversion_rate",
        "0.4000",
        "0.0300",
    )
    assert all(c.flags == [] for c in conversions(session) if c.partner_id != shop.partner.id)
    seen = shop.brand_api.get(f"/api/v1/conversions/{flagged[0].id}").json
    assert seen["flags"] == ["anomaly"] and seen["evidence"]["anomaly"]["cr"] == "0.4000"


def test_a_pending_conversion_of_an_anomalous_partner_is_held_for_review(client, session, frozen_clock):
    frozen_clock(NOW)
    shop = make_shop(session, client, events=[CPL], hold_days=3)
    others = [make_link(session, offer=shop.offer, partner=make_partner(session, name=f"P{n}")) for n in range(2)]
    for link, count, clicks in ((shop.link, 10, 20), (others[0], 1, 100), (others[1], 1, 100)):
        session.add(RollupHour(cube=BY_OFFER_AND_PARTNER, hour=NOW - 2 * HOUR, offer_id=shop.offer.id, partner_id=link.partner_id,
                               brand_id=shop.brand.id, currency="USD", clicks=clicks, unique_clicks=clicks,
                               pending=0, approved=0, rejected=0, reversed=0, sale_minor=0, revenue_minor=0,
                               payout_minor=0))  # fmt: skip
        for n in range(count):
            postback(
                client, click_id=make_click(session, link, at=NOW - HOUR), token=shop.token, txn_id=f"{link.id}-{n}"
            )
    assert flag_anomalies(session, now=NOW + HOUR) == 10
    held = conversions(session, partner_id=shop.partner.id)
    assert {(c.status, c.hold_until) for c in held} == {("pending", None)}


def test_the_job_is_scheduled_with_its_own_claim():
    job = scheduler.get_job("flag_anomalies")
    assert "7 days" in job.description and not job.catch_up
