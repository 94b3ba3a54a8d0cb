"""SPEC §9 from the click to the conversion, through the HTTP API exactly as written."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from network.conversions.models import Conversion
from tests.factories import SPEC_OFFER, Api, make_key


def test_spec_session_click_to_conversion(client, session):
    admin = Api(client, make_key(session, role="admin"))
    r = admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"})
    brand_id, token = r.json["id"], r.json["postback_token"]
    partner_id = admin.post("/api/v1/partners", json={"name": "Deal Blog", "email": "ops@dealblog.example"}).json["id"]
    brand = Api(client, admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand_id}).json["key"])
    partner = Api(client, admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}).json["key"])
    r = brand.post(
        "/api/v1/offers",
        json=SPEC_OFFER,
    )
    offer_id = r.json["id"]
    assert brand.post(f"/api/v1/offers/{offer_id}/activate").json["status"] == "active"
    r = partner.post("/api/v1/links", json={"offer_id": offer_id, "sub1": "spring"})
    assert r.status_code == 201, r.json
    code = r.json["code"]

    r = client.get(f"/c/{code}?sub2=x")
    assert r.status_code == 302
    location = urlsplit(r.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "shop.example", "/landing")
    query = parse_qs(location.query)
    assert query["s"] == ["spring"]
    click_id = query["cid"][0]

    r = client.get(f"/postback?click_id={click_id}&event=sale&amount=80.00&txn_id=A-1&token={token}")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "approved" and r.json["reason"] is None and r.json["duplicate"] is False
    conversion = session.get(Conversion, r.json["conversion_id"])
    assert (conversion.payout_minor, conversion.revenue_minor, conversion.currency) == (800, 1200, "USD")

    # What each role reads of it.
    mine = partner.get("/api/v1/conversions").json["items"]
    assert [(c["id"], c["payout"]) for c in mine] == [(conversion.id, "8.00")]
    assert "revenue" not in mine[0] and "amount" not in mine[0]
    theirs = brand.get(f"/api/v1/conversions?offer_id={offer_id}").json["items"]
    assert [(c["id"], c["revenue"], c["amount"]) for c in theirs] == [(conversion.id, "12.00", "80.00")]
    assert "payout" not in theirs[0]
