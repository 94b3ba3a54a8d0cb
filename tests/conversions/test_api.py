"""Reading conversions and the postback log, scoped per role; the pixel."""

from __future__ import annotations

import datetime as dt

import pytest

from network.conversions.jobs import mature_holds
from tests.conversions.conftest import (
    CPL,
    NOW,
    REVSHARE,
    conversions,
    log_lines,
    make_click,
    make_link,
    make_shop,
    postback,
)
from tests.factories import Api, make_key, make_partner

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.json
    return [item["id"] for item in response.json["items"]]


def test_listing_is_scoped_and_filtered(client, session, frozen_clock):
    a = make_shop(session, client, name="A", events=[REVSHARE], hold_days=2)
    b = make_shop(session, client, name="B", events=[CPL])
    second = make_partner(session, name="Second")
    second_api = Api(client, make_key(session, role="partner", partner=second))
    a2 = make_link(session, offer=a.offer, partner=second)
    c1 = postback(client, click_id=make_click(session, a.link, at=NOW - HOUR), amount="10.00", token=a.token).json
    frozen_clock(NOW + HOUR)
    c2 = postback(client, click_id=make_click(session, a2, at=NOW - HOUR), amount="20.00", token=a.token).json
    c3 = postback(client, click_id=make_click(session, b.link, at=NOW - HOUR), token=b.token).json
    c1, c2, c3 = c1["conversion_id"], c2["conversion_id"], c3["conversion_id"]

    assert _ids(a.admin_api.get("/api/v1/conversions")) == [c1, c2, c3]
    assert _ids(a.brand_api.get("/api/v1/conversions")) == [c1, c2]
    assert _ids(b.brand_api.get("/api/v1/conversions")) == [c3]
    assert _ids(a.partner_api.get("/api/v1/conversions")) == [c1]
    assert _ids(second_api.get("/api/v1/conversions")) == [c2]
    # Filters narrow within the caller's scope, never beyond it.
    assert _ids(a.brand_api.get(f"/api/v1/conversions?partner_id={second.id}")) == [c2]
    assert _ids(b.brand_api.get(f"/api/v1/conversions?offer_id={a.offer.id}")) == []
    assert _ids(second_api.get(f"/api/v1/conversions?partner_id={a.partner.id}")) == []
    assert _ids(a.admin_api.get("/api/v1/conversions?status=pending")) == [c1, c2]
    assert _ids(a.admin_api.get(f"/api/v1/conversions?offer_id={b.offer.id}&status=approved")) == [c3]
    assert _ids(a.admin_api.get("/api/v1/conversions?from=2026-03-10T12:30:00Z")) == [c2, c3]
    assert _ids(a.admin_api.get("/api/v1/conversions?to=2026-03-10T12:30:00%2B00:00")) == [c1]
    assert _ids(a.admin_api.get("/api/v1/conversions?limit=2")) == [c1, c2]
    r = a.admin_api.get("/api/v1/conversions?limit=2")
    assert _ids(a.admin_api.get(f"/api/v1/conversions?limit=2&after={r.json['next_after']}")) == [c3]
    for bad in ("status=paid", "limit=1000000000", "sort=amount;drop table x", "offer_id=x"):
        assert a.admin_api.get(f"/api/v1/conversions?{bad}").status_code == 400
    # Single reads: another tenant's conversion is 404.
    assert b.brand_api.get(f"/api/v1/conversions/{c1}").status_code == 404
    assert second_api.get(f"/api/v1/conversions/{c1}").status_code == 404
    assert a.partner_api.get(f"/api/v1/conversions/{c1}").status_code == 200


def test_each_role_sees_only_its_money(client, session):
    shop = make_shop(session, client, events=[REVSHARE])
    shop.brand.share_txn_id = False
    cid = postback(
        client, click_id=make_click(session, shop.link, at=NOW - HOUR), amount="80.00", txn_id="O-1", token=shop.token
    ).json["conversion_id"]
    finance = Api(client, make_key(session, role="finance"))
    brand = shop.brand_api.get(f"/api/v1/conversions/{cid}").json
    partner = shop.partner_api.get(f"/api/v1/conversions/{cid}").json
    admin = shop.admin_api.get(f"/api/v1/conversions/{cid}").json
    money = finance.get(f"/api/v1/conversions/{cid}").json
    assert (brand["revenue"], brand["amount"], brand["txn_id"], "payout" in brand) == ("12.00", "80.00", "O-1", False)
    assert (partner["payout"], "revenue" in partner, "txn_id" in partner) == ("8.00", False, False)
    assert (admin["payout"], admin["revenue"]) == ("8.00", "12.00")
    assert (money["payout"], money["revenue"]) == ("8.00", "12.00")
    # A brand that shares its txn ids lets its partners see them.
    shop.brand.share_txn_id = True
    session.flush()
    assert shop.partner_api.get(f"/api/v1/conversions/{cid}").json["txn_id"] == "O-1"
    assert shop.partner_api.get("/api/v1/conversions").json["items"][0]["txn_id"] == "O-1"


def test_postback_log_is_the_brands_own_and_never_holds_the_token(client, session):
    a = make_shop(session, client, name="A", events=[CPL])
    b = make_shop(session, client, name="B", events=[CPL])
    postback(client, click_id=make_click(session, a.link, at=NOW - HOUR), txn_id="t1", token=a.token)
    postback(client, click_id=make_click(session, a.link, at=NOW - HOUR), token="pbt_wrong")
    postback(client, click_id=make_click(session, b.link, at=NOW - HOUR), token=b.token)
    postback(client, click_id="garbage", token="pbt_wrong")  # nobody's

    # Brand A's valid token on brand B's click: A's unknown_click, in A's log (B never sees A's call).
    postback(client, click_id=make_click(session, b.link, at=NOW - HOUR), txn_id="from-a", token=a.token)

    mine = a.brand_api.get("/api/v1/postback-log")
    assert mine.status_code == 200
    # Only what A authenticated: an unauthenticated call names no brand (anyone can send one).
    assert [(x["http_status"], x["status"], x["reason"], x["txn_id"]) for x in mine.json["items"]] == [
        (200, "approved", None, "t1"),
        (200, "rejected", "unknown_click", "from-a"),
    ]
    assert "token" not in mine.json["items"][0]["params"] and mine.json["items"][0]["params"]["txn_id"] == "t1"
    assert a.token not in str(mine.json)
    everything = a.admin_api.get("/api/v1/postback-log").json["items"]
    assert [(x["http_status"], x["brand_id"]) for x in everything] == [
        (200, a.brand.id), (403, None), (200, b.brand.id), (403, None), (200, a.brand.id),
    ]  # fmt: skip
    assert [x["brand_id"] for x in b.brand_api.get("/api/v1/postback-log").json["items"]] == [b.brand.id]
    assert a.brand_api.get("/api/v1/postback-log?http_status=403").json["items"] == []
    assert [x["http_status"] for x in a.admin_api.get("/api/v1/postback-log?http_status=403").json["items"]] == [
        403, 403,
    ]  # fmt: skip
    assert a.brand_api.get("/api/v1/postback-log?txn_id=t1").json["items"][0]["conversion_id"] is not None
    assert a.partner_api.get("/api/v1/postback-log").status_code == 403


# ---- the pixel -----------------------------------------------------------------------------------


def _pixel(client, click_id: str | None, **params):
    if click_id is not None:
        client.set_cookie("network_click", click_id)
    else:
        client.delete_cookie("network_click")
    r = client.get("/pixel", query_string=params)
    assert r.status_code == 200 and r.mimetype == "image/gif" and r.data.startswith(b"GIF89a")
    return r


def test_pixel_converts_from_the_click_cookie_and_always_answers_a_gif(client, session):
    shop = make_shop(session, client, events=[REVSHARE, CPL])
    other = make_shop(session, client, name="Other", events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    _pixel(client, click, offer_id=shop.offer.id, event="sale", amount="80.00", txn_id="PX-1")
    _pixel(client, click, offer_id=shop.offer.id, event="sale", amount="80.00", txn_id="PX-1")  # replay
    _pixel(client, click, offer_id=other.offer.id, event="lead")  # cookie of another offer
    _pixel(client, None, offer_id=shop.offer.id, event="lead")  # no cookie
    _pixel(client, click, offer_id=shop.offer.id, event="sale", amount="NaN")  # bad amount
    _pixel(client, click, offer_id=shop.offer.id, event="lead", status="reversed", txn_id="PX-1")  # no undo
    _pixel(client, click, event="lead")  # no offer_id
    (row,) = conversions(session)
    # A browser's report is not the brand's word: held for the brand's review, never auto-approved.
    assert (row.txn_id, row.payout_minor, row.status, row.flags, row.hold_until) == ("PX-1", 800, "pending", ["pixel"],
                                                                                    None)  # fmt: skip
    lines = log_lines(session)
    assert [(x.source, x.http_status, x.reason if x.http_status == 200 else None, x.duplicate) for x in lines] == [
        ("pixel", 200, None, False),
        ("pixel", 200, None, True),
        ("pixel", 200, "unknown_click", False),
        ("pixel", 400, None, False),
        ("pixel", 400, None, False),
        ("pixel", 400, None, False),
        ("pixel", 400, None, False),
    ]
    assert lines[0].brand_id == shop.brand.id and lines[0].click_id == click
    assert "offer_id" in lines[-1].reason
    assert mature_holds(session, now=NOW + dt.timedelta(days=90)) == 0
    r = shop.brand_api.post(f"/api/v1/conversions/{row.id}/status", json={"status": "approved"})
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["flags"] == ["pixel"]


def test_another_brands_cookie_on_a_pixel_bills_nobody(client, session):
    """A visitor who clicked brand B's offer, then converts on brand A's page: nothing for B."""
    a = make_shop(session, client, name="A", events=[CPL])
    b = make_shop(session, client, name="B", events=[CPL])
    b_click = make_click(session, b.link, at=NOW - HOUR)
    _pixel(client, b_click, offer_id=a.offer.id, event="lead", amount="500.00")
    _pixel(client, b_click, event="lead", amount="500.00")  # no offer_id: not "whichever offer the cookie names"
    assert conversions(session) == []
    assert [(x.http_status, x.reason, x.brand_id) for x in log_lines(session)] == [
        (200, "unknown_click", None), (400, "offer_id is required: the pixel names the offer it converts for", None),
    ]  # fmt: skip


def test_head_requests_record_nothing(client, session):
    shop = make_shop(session, client, events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    assert client.head(f"/postback?click_id={click}&token={shop.token}").status_code == 405
    client.set_cookie("network_click", click)
    r = client.head(f"/pixel?offer_id={shop.offer.id}")
    assert r.status_code == 200 and r.mimetype == "image/gif"
    assert conversions(session) == [] and log_lines(session) == []
