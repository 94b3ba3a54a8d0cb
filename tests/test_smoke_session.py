"""SPEC §9 up to the offer's activation, through the HTTP API exactly as written."""

from __future__ import annotations

from tests.factories import Api, make_key


def test_spec_session_up_to_offer_activation(client, session):
    admin = Api(client, make_key(session, role="admin"))
    r = admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"})
    assert r.status_code == 201, r.json
    brand_id, token = r.json["id"], r.json["postback_token"]
    assert token
    r = admin.post("/api/v1/partners", json={"name": "Deal Blog", "email": "ops@dealblog.example"})
    assert r.status_code == 201 and r.json["status"] == "active"
    partner_id = r.json["id"]
    brand_key = admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand_id}).json["key"]
    partner_key = admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}).json["key"]
    finance_key = admin.post("/api/v1/keys", json={"role": "finance"}).json["key"]
    assert brand_key.startswith("nk_brand_") and partner_key.startswith("nk_partner_") and finance_key

    brand = Api(client, brand_key)
    r = brand.post(
        "/api/v1/offers",
        json={
            "name": "Spring sale",
            "currency": "USD",
            "visibility": "public",
            "destination_url": "https://shop.example/landing?cid={click_id}&s={sub1}",
            "allowed_domains": ["shop.example"],
            "conversion_window_days": 30,
            "hold_days": 0,
            "countries": [],
            "fallback_url": "https://shop.example/",
            "caps": [{"metric": "conversions", "period": "day", "limit": 1000, "scope": "offer"}],
            "events": [
                {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
                {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
            ],
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["status"] == "draft"
    offer_id = r.json["id"]
    r = brand.post(f"/api/v1/offers/{offer_id}/activate")
    assert r.status_code == 200 and r.json["status"] == "active"
    r = Api(client, partner_key).get(f"/api/v1/offers/{offer_id}")
    assert r.status_code == 200
    assert "revenue" not in r.json["events"][1] and r.json["events"][1]["payout"] == "2.00"
