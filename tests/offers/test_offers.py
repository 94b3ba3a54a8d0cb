"""Offers (SPEC §3): every field, every commission model, the loss-leader rule, caps, targeting,
and the status machine draft -> active -> paused -> archived."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from network.offers.models import Cap
from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner
from tests.snapshots import snapshot


@pytest.fixture
def brand(session):
    b = make_brand(session)
    session.flush()
    return b


@pytest.fixture
def as_brand(client, session, brand) -> Api:
    return Api(client, make_key(session, role="brand", brand=brand))


@pytest.fixture
def admin(client, session) -> Api:
    return Api(client, make_key(session, role="admin"))


def body(**extra: Any) -> dict[str, Any]:
    return {
        "name": "Spring sale",
        "destination_url": "https://shop.example/l?c={click_id}",
        "events": [cpa_event()],
    } | extra


FULL = {
    "name": "Spring sale",
    "currency": "USD",
    "visibility": "approval",
    "destination_url": "https://shop.example/landing?cid={click_id}&s={sub1}&o={offer_id}&p={partner_id}",
    "allowed_domains": ["shop.example", "Deals.Shop.Example."],
    "conversion_window_days": 14,
    "hold_days": 7,
    "min_seconds": 30,
    "countries": ["us", "GB"],
    "devices": ["mobile", "desktop"],
    "fallback_url": "https://shop.example/",
    "caps": [
        {"metric": "conversions", "period": "day", "limit": 1000, "scope": "offer"},
        {"metric": "payout", "period": "month", "limit": "5000.00", "scope": "partner"},
        {"metric": "clicks", "period": "lifetime", "limit": "100000"},
    ],
    "events": [
        {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
        {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
        {"key": "signup", "model": "cpa", "payout": "5", "revenue": "8.5"},
        {"key": "install", "model": "cpi", "payout": "0.50", "revenue": "0.75"},
        {
            "key": "premium",
            "model": "hybrid",
            "payout": "1.00",
            "revenue": "2.00",
            "payout_percent": "2.5",
            "revenue_percent": "5",
        },
    ],
    "click_payout": "0.05",
    "click_revenue": "0.08",
    "impression_payout": "1.00",
    "impression_revenue": "1.50",
}


def test_an_offer_holds_every_field_of_spec_section_3(as_brand, brand):
    r = as_brand.post("/api/v1/offers", json=FULL)
    assert r.status_code == 201, r.json
    offer = r.json
    assert offer["status"] == "draft" and offer["brand_id"] == brand.id and offer["currency"] == "USD"
    assert offer["visibility"] == "approval"
    assert offer["allowed_domains"] == ["deals.shop.example", "shop.example"]
    assert (offer["conversion_window_days"], offer["hold_days"], offer["min_seconds"]) == (14, 7, 30)
    assert offer["countries"] == ["GB", "US"] and offer["devices"] == ["desktop", "mobile"]
    assert offer["fallback_url"] == "https://shop.example/"
    assert offer["caps"] == [
        {"metric": "conversions", "period": "day", "limit": 1000, "scope": "offer"},
        {"metric": "payout", "period": "month", "limit": "5000.00", "scope": "partner"},
        {"metric": "clicks", "period": "lifetime", "limit": 100000, "scope": "offer"},
    ]
    assert offer["events"] == [
        {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
        {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
        {"key": "signup", "model": "cpa", "payout": "5.00", "revenue": "8.50"},
        {"key": "install", "model": "cpi", "payout": "0.50", "revenue": "0.75"},
        {
            "key": "premium",
            "model": "hybrid",
            "payout": "1.00",
            "revenue": "2.00",
            "payout_percent": "2.5",
            "revenue_percent": "5",
        },
    ]
    assert (offer["click_payout"], offer["click_revenue"]) == ("0.05", "0.08")
    assert (offer["impression_payout"], offer["impression_revenue"]) == ("1.00", "1.50")
    assert offer["allow_loss"] is False and offer["payout_min_amount"] is None


def test_defaults_follow_the_spec(as_brand, brand):
    offer = as_brand.post("/api/v1/offers", json=body()).json
    assert offer["conversion_window_days"] == 30 and offer["hold_days"] == 0 and offer["min_seconds"] == 0
    assert offer["visibility"] == "public" and offer["countries"] == [] and offer["devices"] == []
    assert offer["currency"] == brand.currency and offer["caps"] == [] and offer["fallback_url"] is None


def test_money_is_in_the_offers_currency(client, session):
    yen = make_brand(session, name="Yen", currency="JPY")
    dinar = make_brand(session, name="Dinar", currency="BHD")
    session.flush()
    api = Api(client, make_key(session, role="admin"))
    r = api.post("/api/v1/offers", json=body(brand_id=yen.id, events=[cpa_event(payout="500", revenue="800")]))
    assert r.status_code == 201 and r.json["events"][0]["payout"] == "500" and r.json["currency"] == "JPY"
    r = api.post("/api/v1/offers", json=body(brand_id=yen.id, events=[cpa_event(payout="5.5", revenue="8")]))
    assert r.status_code == 400 and "events[0].payout" in r.json["errors"]
    r = api.post("/api/v1/offers", json=body(brand_id=dinar.id, events=[cpa_event(payout="1.125", revenue="2.5")]))
    assert r.status_code == 201 and r.json["events"][0] == {
        "key": "sale",
        "model": "cpa",
        "payout": "1.125",
        "revenue": "2.500",
    }
    r = api.post("/api/v1/offers", json=body(brand_id=yen.id, currency="EUR", events=[cpa_event()]))
    assert r.status_code == 201 and r.json["currency"] == "EUR"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (cpa_event(payout="10.005"), "events[0].payout"),
        (cpa_event(payout="NaN"), "events[0].payout"),
        (cpa_event(payout="1e3"), "events[0].payout"),
        (cpa_event(payout="-1.00"), "events[0].payout"),
        (cpa_event(revenue="\uff11\uff10\uff10"), "events[0].revenue"),
        (cpa_event(revenue="1,000.00"), "events[0].revenue"),
        ({"key": "sale", "model": "cpa", "payout": 5.0, "revenue": "8.00"}, "events[0].payout"),
        (
            {"key": "sale", "model": "revshare", "payout_percent": "101", "revenue_percent": "15"},
            "events[0].payout_percent",
        ),
        (
            {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "1e1"},
            "events[0].revenue_percent",
        ),
        (
            {"key": "sale", "model": "cpa", "payout": "1.00", "revenue": "2.00", "payout_percent": "5"},
            "events[0].payout_percent",
        ),
        (
            {"key": "sale", "model": "revshare", "payout": "1.00", "payout_percent": "5", "revenue_percent": "6"},
            "events[0].payout",
        ),
        ({"key": "sale", "model": "revshare"}, "events[0]"),
        ({"key": "sale", "model": "cpc", "payout": "1.00"}, "events[0].model"),
        ({"key": "bad key!", "model": "cpa", "payout": "1.00"}, "events[0].key"),
        ({"model": "cpa", "payout": "1.00"}, "events[0].key"),
    ],
)
def test_a_bad_event_is_refused_naming_the_field(as_brand, session, event, field):
    before = snapshot(session)
    r = as_brand.post("/api/v1/offers", json=body(events=[event]))
    assert r.status_code == 400, r.json
    assert field in r.json["errors"] and field in r.json["message"], r.json
    assert snapshot(session) == before


def test_events_need_unique_keys_and_at_least_one(as_brand):
    r = as_brand.post("/api/v1/offers", json=body(events=[cpa_event(), cpa_event()]))
    assert r.status_code == 400 and "events" in r.json["errors"]
    r = as_brand.post("/api/v1/offers", json=body(events=[]))
    assert r.status_code == 400 and "events" in r.json["errors"]
    r = as_brand.post("/api/v1/offers", json={"name": "N", "destination_url": "https://shop.example/"})
    assert r.status_code == 400 and "events" in r.json["errors"]


# ---- revenue >= payout unless the admin allows a loss leader -----------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"events": [cpa_event(payout="9.00", revenue="8.00")]}, "events[0]"),
        ({"events": [{"key": "s", "model": "revshare", "payout_percent": "20", "revenue_percent": "15"}]}, "events[0]"),
        (
            {
                "events": [
                    {
                        "key": "s",
                        "model": "hybrid",
                        "payout": "1",
                        "revenue": "2",
                        "payout_percent": "6",
                        "revenue_percent": "5",
                    }
                ]
            },
            "events[0]",
        ),
        ({"click_payout": "0.10", "click_revenue": "0.05"}, "click_payout"),
        ({"impression_payout": "2.00"}, "impression_payout"),
    ],
)
def test_payout_above_revenue_is_refused_with_the_reason(as_brand, extra, field):
    r = as_brand.post("/api/v1/offers", json=body(**extra))
    assert r.status_code == 400 and r.json["code"] == "loss_leader", r.json
    assert field in r.json["errors"]
    assert "greater than" in r.json["message"] and "only an admin may allow a loss leader" in r.json["message"]


def test_an_admin_may_allow_a_loss_leader(admin, as_brand, brand):
    loss = body(brand_id=brand.id, allow_loss=True, events=[cpa_event(payout="9.00", revenue="8.00")])
    r = admin.post("/api/v1/offers", json=loss)
    assert r.status_code == 201 and r.json["allow_loss"] is True
    offer_id = r.json["id"]
    # The brand may then keep its loss-leading figures, but may not flip the permission itself.
    assert as_brand.patch(f"/api/v1/offers/{offer_id}", json={"name": "Still a loss"}).status_code == 200
    assert as_brand.patch(f"/api/v1/offers/{offer_id}", json={"allow_loss": False}).status_code == 400
    # Once the admin withdraws it, the figures must be fixed first.
    r = admin.patch(f"/api/v1/offers/{offer_id}", json={"allow_loss": False})
    assert r.status_code == 400 and r.json["code"] == "loss_leader"
    r = admin.patch(
        f"/api/v1/offers/{offer_id}", json={"allow_loss": False, "events": [cpa_event(payout="8.00", revenue="8.00")]}
    )
    assert r.status_code == 200 and r.json["allow_loss"] is False


# ---- URLs and targeting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"destination_url": "javascript:alert(1)"}, "destination_url"),
        ({"destination_url": "ftp://shop.example/"}, "destination_url"),
        ({"destination_url": "https://{sub1}.shop.example/"}, "destination_url"),
        ({"destination_url": "https://shop.example/?x={secret}"}, "destination_url"),
        ({"destination_url": "https://user@shop.example/"}, "destination_url"),
        ({"destination_url": "https://shop.example/\r\nX: y"}, "destination_url"),
        ({"fallback_url": "https://shop.example/?c={click_id}"}, "fallback_url"),
        ({"fallback_url": "//evil.example/"}, "fallback_url"),
        ({"allowed_domains": ["https://shop.example/"]}, "allowed_domains"),
        ({"allowed_domains": ["shop.example@evil.example"]}, "allowed_domains"),
        ({"countries": ["USA"]}, "countries[0]"),
        ({"devices": ["fridge"]}, "devices[0]"),
        ({"conversion_window_days": -1}, "conversion_window_days"),
        ({"hold_days": 366}, "hold_days"),
        ({"min_seconds": "soon"}, "min_seconds"),
        ({"visibility": "secret"}, "visibility"),
        ({"currency": "ABC"}, "currency"),
    ],
)
def test_bad_urls_and_targeting_are_refused_naming_the_field(as_brand, extra, field):
    r = as_brand.post("/api/v1/offers", json=body(**extra))
    assert r.status_code == 400 and field in r.json["errors"], r.json


# ---- caps ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cap", "field"),
    [
        ({"metric": "payout", "period": "day", "limit": 500}, "caps[0].limit"),
        ({"metric": "payout", "period": "day", "limit": "500.001"}, "caps[0].limit"),
        ({"metric": "clicks", "period": "day", "limit": 10.5}, "caps[0].limit"),
        ({"metric": "clicks", "period": "day", "limit": "ten"}, "caps[0].limit"),
        ({"metric": "clicks", "period": "day", "limit": -1}, "caps[0].limit"),
        ({"metric": "clicks", "period": "day", "limit": True}, "caps[0].limit"),
        ({"metric": "revenue", "period": "day", "limit": 1}, "caps[0].metric"),
        ({"metric": "clicks", "period": "hour", "limit": 1}, "caps[0].period"),
        ({"metric": "clicks", "period": "day", "limit": 1, "scope": "brand"}, "caps[0].scope"),
        ({"metric": "clicks", "period": "day"}, "caps[0].limit"),
    ],
)
def test_a_bad_cap_is_refused_naming_the_field(as_brand, cap, field):
    r = as_brand.post("/api/v1/offers", json=body(caps=[cap]))
    assert r.status_code == 400 and field in r.json["errors"], r.json


def test_two_caps_on_the_same_metric_period_and_scope_are_refused(as_brand):
    cap = {"metric": "conversions", "period": "day", "limit": 10}
    r = as_brand.post("/api/v1/offers", json=body(caps=[cap, {**cap, "limit": 20}]))
    assert r.status_code == 400 and "caps[1]" in r.json["errors"]


def test_editing_caps_keeps_the_rows_of_caps_that_stay(as_brand, session):
    day = {"metric": "conversions", "period": "day", "limit": 10}
    week = {"metric": "clicks", "period": "week", "limit": 100}
    offer_id = as_brand.post("/api/v1/offers", json=body(caps=[day, week])).json["id"]
    before = {(c.metric, c.period): c.id for c in session.query(Cap).filter_by(offer_id=offer_id)}
    r = as_brand.patch(f"/api/v1/offers/{offer_id}", json={"caps": [{**day, "limit": 20}]})
    assert r.status_code == 200 and r.json["caps"] == [{**day, "limit": 20, "scope": "offer"}]
    session.expire_all()
    after = {(c.metric, c.period): (c.id, c.limit) for c in session.query(Cap).filter_by(offer_id=offer_id)}
    # The day cap kept its row (and so its counters); the week cap is gone.
    assert after == {("conversions", "day"): (before[("conversions", "day")], 20)}


# ---- editing ------------------------------------------------------------------------------------


def test_events_are_matched_by_key_never_removed_and_keep_their_ids(as_brand, session):
    offer_id = as_brand.post("/api/v1/offers", json=body(events=[cpa_event("sale"), cpa_event("lead")])).json["id"]
    ids = dict(session.execute(text("SELECT key, id FROM offer_events WHERE offer_id = :o"), {"o": offer_id}).all())
    r = as_brand.patch(
        f"/api/v1/offers/{offer_id}",
        json={"events": [cpa_event("lead", payout="1.00"), cpa_event("sale"), cpa_event("extra")]},
    )
    assert r.status_code == 200 and [e["key"] for e in r.json["events"]] == ["lead", "sale", "extra"]
    new = dict(session.execute(text("SELECT key, id FROM offer_events WHERE offer_id = :o"), {"o": offer_id}).all())
    assert new["sale"] == ids["sale"] and new["lead"] == ids["lead"]
    r = as_brand.patch(f"/api/v1/offers/{offer_id}", json={"events": [cpa_event("sale")]})
    assert r.status_code == 400 and "lead" in r.json["message"]


def test_the_currency_is_fixed_once_created(as_brand):
    offer_id = as_brand.post("/api/v1/offers", json=body()).json["id"]
    assert as_brand.patch(f"/api/v1/offers/{offer_id}", json={"currency": "USD"}).status_code == 200
    r = as_brand.patch(f"/api/v1/offers/{offer_id}", json={"currency": "EUR"})
    assert r.status_code == 400 and "currency" in r.json["errors"]


def test_a_brand_edits_its_offer(as_brand):
    offer_id = as_brand.post("/api/v1/offers", json=body()).json["id"]
    r = as_brand.patch(
        f"/api/v1/offers/{offer_id}",
        json={"name": "Summer sale", "hold_days": 3, "countries": [], "fallback_url": None, "visibility": "private"},
    )
    assert r.status_code == 200, r.json
    assert (r.json["name"], r.json["hold_days"], r.json["visibility"]) == ("Summer sale", 3, "private")


# ---- status machine -----------------------------------------------------------------------------

#: (from status, action) -> the status it leads to, or None for 409.
TRANSITIONS = {
    ("draft", "activate"): "active",
    ("draft", "pause"): None,
    ("draft", "archive"): "archived",
    ("active", "activate"): None,
    ("active", "pause"): "paused",
    ("active", "archive"): "archived",
    ("paused", "activate"): "active",
    ("paused", "pause"): None,
    ("paused", "archive"): "archived",
    ("archived", "activate"): None,
    ("archived", "pause"): None,
    ("archived", "archive"): None,
}


@pytest.mark.parametrize(("start", "action"), list(TRANSITIONS), ids=[f"{s}-{a}" for s, a in TRANSITIONS])
def test_status_transitions_follow_the_machine_others_are_409(as_brand, session, brand, start, action):
    offer = make_offer(session, brand=brand, status=start)
    session.flush()
    r = as_brand.post(f"/api/v1/offers/{offer.id}/{action}")
    expected = TRANSITIONS[(start, action)]
    if expected is None:
        assert r.status_code == 409 and r.json["code"] == "invalid_transition", r.json
        assert start in r.json["message"]
        status = session.execute(text("SELECT status FROM offers WHERE id = :id"), {"id": offer.id}).scalar()
        assert status == start
    else:
        assert r.status_code == 200 and r.json["status"] == expected


def test_an_archived_offer_cannot_be_edited(as_brand, session, brand):
    offer = make_offer(session, brand=brand, status="archived")
    session.flush()
    r = as_brand.patch(f"/api/v1/offers/{offer.id}", json={"name": "Back"})
    assert r.status_code == 409 and r.json["code"] == "offer_archived"


def test_the_admin_creates_offers_for_a_named_brand(admin, brand):
    r = admin.post("/api/v1/offers", json=body())
    assert r.status_code == 400 and "brand_id" in r.json["errors"]
    r = admin.post("/api/v1/offers", json=body(brand_id=999_999))
    assert r.status_code == 400 and "brand_id" in r.json["errors"]
    r = admin.post("/api/v1/offers", json=body(brand_id=brand.id, payout_min_amount="75.00"))
    assert r.status_code == 201 and r.json["brand_id"] == brand.id and r.json["payout_min_amount"] == "75.00"


# ---- reading ------------------------------------------------------------------------------------


def test_a_partner_sees_its_payout_never_the_brands_revenue(client, session, brand):
    offer = make_offer(
        session, brand=brand, events=FULL["events"], caps=FULL["caps"], click_payout="0.05", click_revenue="0.10"
    )
    partner = make_partner(session)
    view = Api(client, make_key(session, role="partner", partner=partner)).get(f"/api/v1/offers/{offer.id}").json
    assert view["can_run"] is True
    for event in view["events"]:
        assert "revenue" not in event and "revenue_percent" not in event
    assert view["events"][0]["payout_percent"] == "10" and view["click_payout"] == "0.05"
    assert not {"caps", "click_revenue", "impression_revenue", "allow_loss", "payout_min_amount"} & set(view)


def test_finance_reads_offers(client, session, brand):
    offer = make_offer(session, brand=brand)
    r = Api(client, make_key(session, role="finance")).get(f"/api/v1/offers/{offer.id}")
    assert r.status_code == 200 and r.json["events"][0]["revenue"] == "8.00"


def test_offers_list_filters_and_pages(as_brand, session, brand):
    active = [make_offer(session, brand=brand, name=f"A{i}").id for i in range(3)]
    paused = make_offer(session, brand=brand, status="paused", visibility="private").id
    session.flush()
    assert [o["id"] for o in as_brand.get("/api/v1/offers?status=active").json["items"]] == active
    assert [o["id"] for o in as_brand.get("/api/v1/offers?visibility=private").json["items"]] == [paused]
    first = as_brand.get("/api/v1/offers?limit=2").json
    second = as_brand.get(f"/api/v1/offers?limit=2&after={first['next_after']}").json
    assert [o["id"] for o in first["items"] + second["items"]] == [*active, paused]
    assert as_brand.get("/api/v1/offers?limit=501").status_code == 400
    assert as_brand.get("/api/v1/offers?sort=payout").status_code == 400
