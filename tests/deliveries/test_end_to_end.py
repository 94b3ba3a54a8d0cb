"""A partner sees every conversion and status change on its own endpoint: click, postback, approve, reverse."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from network.tracking import service as tracking
from tests.deliveries.conftest import deliver
from tests.deliveries.endpoints import Endpoint
from tests.factories import Api, make_key


def test_partner_sees_each_conversion_and_status_change(committed_app, committed_db, settings, endpoints):
    global_endpoint: Endpoint = endpoints()
    offer_endpoint: Endpoint = endpoints()
    client = committed_app.test_client()
    with committed_db.session_scope() as s:
        admin = Api(client, make_key(s, role="admin"))
    brand_id, token = (lambda r: (r["id"], r["postback_token"]))(
        admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"}).json
    )
    partner_id = admin.post("/api/v1/partners", json={"name": "Deal Blog"}).json["id"]
    brand = Api(client, admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand_id}).json["key"])
    partner = Api(client, admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}).json["key"])
    offer = brand.post(
        "/api/v1/offers",
        json={
            "name": "Spring sale",
            "currency": "USD",
            "visibility": "public",
            "destination_url": "https://shop.example/landing?cid={click_id}",
            "allowed_domains": ["shop.example"],
            "hold_days": 1,
            "events": [{"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"}],
        },
    ).json
    assert brand.post(f"/api/v1/offers/{offer['id']}/activate").status_code == 200

    # The partner sets its URLs through the API, as a partner would.
    r = partner.patch(
        f"/api/v1/partners/{partner_id}",
        json={
            "postback_url": global_endpoint.url(
                "/pb?cid={click_id}&conv={conversion_id}&st={status}&p={payout}&s1={sub1}&s2={sub2}"
            )
        },
    )
    assert r.status_code == 200, r.json
    r = partner.post(
        f"/api/v1/partners/{partner_id}/offer-postbacks",
        json={"offer_id": offer["id"], "url": offer_endpoint.url("/hook"), "method": "post"},
    )
    assert r.status_code == 201, r.json

    code = partner.post("/api/v1/links", json={"offer_id": offer["id"], "sub1": "spring"}).json["code"]
    location = client.get(f"/c/{code}?sub2=x").headers["Location"]
    click_id = parse_qs(urlsplit(location).query)["cid"][0]
    tracking.flush_clicks()
    answer = client.get(f"/postback?click_id={click_id}&event=lead&txn_id=L-1&token={token}").json
    assert answer["status"] == "pending", answer
    conversion_id = answer["conversion_id"]
    for _ in range(4):  # replays: one conversion, so one postback per URL (RELIABILITY.md 7)
        replay = client.get(f"/postback?click_id={click_id}&event=lead&txn_id=L-1&token={token}").json
        assert (replay["conversion_id"], replay["duplicate"]) == (conversion_id, True)
    # Nothing is sent from the web request: only the job calls partners.
    assert global_endpoint.connections == offer_endpoint.connections == 0
    assert deliver(committed_db, settings, workers=1) == 2

    for status in ("approved", "reversed"):
        r = brand.post(f"/api/v1/conversions/{conversion_id}/status", json={"status": status, "reason": "test"})
        assert r.status_code == 200, r.json
        assert deliver(committed_db, settings, workers=1) == 2

    seen = [
        (r.one("conv"), r.one("st"), r.one("p"), r.one("cid"), r.one("s1"), r.one("s2"))
        for r in global_endpoint.requests
    ]
    assert seen == [
        (str(conversion_id), s, "2.00", click_id, "spring", "x") for s in ("pending", "approved", "reversed")
    ]
    posted = [json.loads(r.body) for r in offer_endpoint.requests]
    assert [(p["type"], p["data"]["status"], p["data"]["previous_status"]) for p in posted] == [
        ("conversion.created", "pending", ""),
        ("conversion.updated", "approved", "pending"),
        ("conversion.updated", "reversed", "approved"),
    ]
    assert all("webhook-signature" in r.headers for r in offer_endpoint.requests)

    listed = partner.get(f"/api/v1/postback-deliveries?conversion_id={conversion_id}").json["items"]
    assert len(listed) == 6 and {d["status"] for d in listed} == {"delivered"}
    # Run again: nothing is sent twice.
    assert deliver(committed_db, settings) == 0
    assert global_endpoint.connections == offer_endpoint.connections == 3
