"""Statuses: holds and their maturing job, fraud review, brand/admin changes, undo by postback."""

from __future__ import annotations

import datetime as dt

import pytest

from network.conversions.jobs import mature_holds
from tests.conversions.conftest import CPL, NOW, REVSHARE, conversions, make_click, make_shop, postback

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def test_hold_keeps_pending_until_the_job_approves_it_once(client, session, signals, frozen_clock):
    shop = make_shop(session, client, events=[CPL], hold_days=7)
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, token=shop.token).json
    assert (r["status"], r["reason"]) == ("pending", None)
    (row,) = conversions(session)
    assert row.hold_until == NOW + 7 * DAY

    assert mature_holds(session, now=NOW + 7 * DAY - dt.timedelta(seconds=1)) == 0
    assert mature_holds(session, now=NOW + 7 * DAY) == 1
    assert mature_holds(session, now=NOW + 8 * DAY) == 0  # idempotent
    (row,) = conversions(session)
    assert (row.status, row.hold_until) == ("approved", None)
    assert [(s["old_status"], s["new_status"]) for s in signals] == [(None, "pending"), ("pending", "approved")]


def test_a_conversion_rejected_during_its_hold_is_not_approved(client, session):
    shop = make_shop(session, client, events=[CPL], hold_days=3)
    click = make_click(session, shop.link, at=NOW - HOUR)
    cid = postback(client, click_id=click, token=shop.token).json["conversion_id"]
    r = shop.brand_api.post(f"/api/v1/conversions/{cid}/status", json={"status": "rejected", "reason": "test order"})
    assert r.status_code == 200 and r.json["status"] == "rejected" and r.json["reason"] == "test order"
    assert mature_holds(session, now=NOW + 10 * DAY) == 0
    assert conversions(session)[0].status == "rejected"


@pytest.mark.parametrize(
    ("click_flags", "offer", "flags"),
    [
        ({"is_bot": True}, {}, ["bot"]),
        ({}, {"min_seconds": 3000}, ["too_fast"]),  # allowed (3600 s >= 3000) but within twice of it
    ],
)
def test_fraud_flags_hold_for_review_and_never_auto_approve(client, session, click_flags, offer, flags):
    shop = make_shop(session, client, events=[CPL], hold_days=1, **offer)
    click = make_click(session, shop.link, at=NOW - HOUR, **click_flags)
    r = postback(client, click_id=click, token=shop.token).json
    assert (r["status"], r["reason"]) == ("pending", None)
    (row,) = conversions(session)
    assert (row.flags, row.hold_until) == (flags, None)
    assert mature_holds(session, now=NOW + 30 * DAY) == 0
    # Visible to the brand and the admin, not to the partner.
    assert shop.brand_api.get(f"/api/v1/conversions/{row.id}").json["flags"] == flags
    assert shop.admin_api.get(f"/api/v1/conversions/{row.id}").json["flags"] == flags
    assert "flags" not in shop.partner_api.get(f"/api/v1/conversions/{row.id}").json
    # The brand reviews it.
    r = shop.brand_api.post(f"/api/v1/conversions/{row.id}/status", json={"status": "approved"})
    assert r.status_code == 200 and r.json["status"] == "approved"


def test_brand_and_admin_status_changes(client, session, signals):
    shop = make_shop(session, client, events=[REVSHARE])
    other = make_shop(session, client, name="Other", events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    cid = postback(client, click_id=click, amount="50.00", token=shop.token).json["conversion_id"]
    url = f"/api/v1/conversions/{cid}/status"
    # Another brand: 404 (existence is not leaked); partner and finance may not act: 403.
    assert other.brand_api.post(url, json={"status": "reversed"}).status_code == 404
    assert shop.partner_api.post(url, json={"status": "reversed"}).status_code == 403
    # Writing anything else is refused.
    assert shop.brand_api.post(url, json={"status": "reversed", "payout": "99.00"}).status_code == 400
    assert shop.brand_api.post(url, json={"status": "pending"}).status_code == 400
    # approved -> approved is a no-op; approved -> reversed; reversed -> approved is 409.
    assert shop.brand_api.post(url, json={"status": "approved"}).json["status"] == "approved"
    r = shop.brand_api.post(url, json={"status": "reversed", "reason": "chargeback"})
    assert (r.status_code, r.json["status"], r.json["reason"]) == (200, "reversed", "chargeback")
    r = shop.admin_api.post(url, json={"status": "approved"})
    assert r.status_code == 409 and r.json["code"] == "invalid_transition"
    assert r.json["message"] == "a reversed conversion cannot become approved"
    assert [(s["old_status"], s["new_status"], s["reason"]) for s in signals] == [
        (None, "approved", None),
        ("approved", "reversed", "chargeback"),
    ]
    history = shop.brand_api.get(f"/api/v1/conversions/{cid}").json["history"]
    assert [(h["old_status"], h["new_status"], h["actor"]) for h in history] == [
        (None, "approved", "postback"),
        ("approved", "reversed", history[1]["actor"]),
    ]
    assert history[1]["actor"].startswith("brand:")


def test_undo_by_postback_with_txn_id(client, session, signals):
    shop = make_shop(session, client, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - HOUR)
    first = postback(client, click_id=click, amount="50.00", txn_id="T-9", token=shop.token).json
    r = postback(client, txn_id="T-9", status="reversed", reason="refund", token=shop.token)
    assert r.status_code == 200
    assert r.json == {"conversion_id": first["conversion_id"], "status": "reversed", "reason": "refund",
                      "duplicate": False}  # fmt: skip
    # A replay is a no-op that says so.
    again = postback(client, txn_id="T-9", status="reversed", token=shop.token).json
    assert again == {**r.json, "duplicate": True}
    # A later "rejected" for a reversed conversion changes nothing either.
    assert postback(client, txn_id="T-9", status="rejected", token=shop.token).json["status"] == "reversed"
    assert [(s["old_status"], s["new_status"]) for s in signals] == [(None, "approved"), ("approved", "reversed")]


def test_undo_by_postback_of_a_pending_conversion_rejects_it(client, session):
    shop = make_shop(session, client, events=[CPL], hold_days=5)
    click = make_click(session, shop.link, at=NOW - HOUR)
    postback(client, click_id=click, txn_id="P-1", token=shop.token)
    r = postback(client, txn_id="P-1", status="reversed", token=shop.token).json
    assert (r["status"], r["reason"]) == ("rejected", "reversed by brand postback")


def test_undo_by_postback_only_reaches_the_brands_own_conversions(client, session):
    shop = make_shop(session, client, events=[CPL])
    other = make_shop(session, client, name="Other", events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    cid = postback(client, click_id=click, txn_id="SAME", token=shop.token).json["conversion_id"]
    # The other brand's token: its own offers have no such txn_id.
    r = postback(client, txn_id="SAME", status="reversed", token=other.token)
    assert r.status_code == 200 and r.json["reason"] == "unknown_txn_id" and r.json["conversion_id"] is None
    # Naming our offer with the other brand's token is 403; naming our click, the token's brand
    # looks among its own conversions (as for a new conversion: unknown_click, not 403).
    r = postback(client, txn_id="SAME", status="reversed", offer_id=shop.offer.id, token=other.token)
    assert r.status_code == 403
    r = postback(client, txn_id="SAME", status="reversed", click_id=click, token=other.token)
    assert r.status_code == 200 and r.json["reason"] == "unknown_txn_id"
    r = postback(client, txn_id="SAME", status="reversed", token="pbt_nobody")
    assert r.status_code == 403
    assert conversions(session, id=cid)[0].status == "approved"


def test_undo_needs_an_unambiguous_txn_id(client, session):
    shop = make_shop(session, client, events=[CPL, {"key": "sale", "model": "cpa", "payout": "1.00",
                                                    "revenue": "2.00"}])  # fmt: skip
    click = make_click(session, shop.link, at=NOW - HOUR)
    postback(client, click_id=click, event="lead", txn_id="X", token=shop.token)
    postback(client, click_id=click, event="sale", txn_id="X", token=shop.token)
    r = postback(client, txn_id="X", status="reversed", token=shop.token)
    assert r.status_code == 400 and "txn_id" in r.json["errors"]
    r = postback(client, txn_id="X", status="reversed", event="sale", token=shop.token)
    assert r.status_code == 200 and r.json["status"] == "reversed"
    assert [c.status for c in conversions(session)] == ["approved", "reversed"]


def test_signed_undo_names_its_offer(client, session):
    from urllib.parse import urlencode

    from network.conversions.service import sign

    shop = make_shop(session, client, events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    postback(client, click_id=click, txn_id="S-1", token=shop.token)
    query = urlencode({"txn_id": "S-1", "status": "rejected", "offer_id": shop.offer.id})
    r = client.get(
        f"/postback?{query}", headers={"X-Signature": sign(shop.token, query.encode(), int(NOW.timestamp()))}
    )
    assert r.status_code == 200 and r.json["status"] == "rejected"
