"""SPEC §9 end to end through the HTTP API, to the paid payout: with the manual gateway and with
the Stripe gateway pointed at FakeStripe (onboarding and its webhook included)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from network.app import create_app
from tests.conftest import make_settings
from tests.factories import SPEC_OFFER, Api
from tests.payouts.support import API_KEY, WEBHOOK_SECRET, check_invariants, exports_fixture  # noqa: F401


@pytest.fixture(params=["manual", "stripe"])
def gateway_name(request):
    return request.param


@pytest.fixture
def fake(gateway_name, request):
    return request.getfixturevalue("fake_stripe") if gateway_name == "stripe" else None


@pytest.fixture
def app(database_url, db, fake):
    overrides = {}
    if fake is not None:
        overrides = {
            "stripe_api_key": API_KEY,
            "stripe_api_base": fake.base_url,
            "stripe_webhook_secret": WEBHOOK_SECRET,
        }
    return create_app(make_settings(database_url, **overrides), database=db)


def test_spec_session_to_the_paid_payout(app, client, session, fake, exports):
    result = app.test_cli_runner().invoke(args=["keys", "create", "--role", "admin"])
    assert result.exit_code == 0, result.output
    admin = Api(client, result.output.strip().splitlines()[-1])
    r = admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"})
    brand_id, token = r.json["id"], r.json["postback_token"]
    r = admin.post("/api/v1/partners", json={"name": "Deal Blog", "email": "ops@dealblog.example"})
    assert r.status_code == 201 and r.json["status"] == "active"
    partner_id = r.json["id"]
    brand = Api(client, admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand_id}).json["key"])
    partner = Api(client, admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner_id}).json["key"])
    finance = Api(client, admin.post("/api/v1/keys", json={"role": "finance"}).json["key"])

    r = brand.post(
        "/api/v1/offers",
        json=SPEC_OFFER,
    )
    assert r.status_code == 201 and r.json["status"] == "draft", r.json
    offer_id = r.json["id"]
    assert brand.post(f"/api/v1/offers/{offer_id}/activate").json["status"] == "active"
    code = partner.post("/api/v1/links", json={"offer_id": offer_id, "sub1": "spring"}).json["code"]
    r = client.get(f"/c/{code}?sub2=x")
    assert r.status_code == 302
    click_id = parse_qs(urlsplit(r.headers["Location"]).query)["cid"][0]
    r = client.get(f"/postback?click_id={click_id}&event=sale&amount=80.00&txn_id=A-1&token={token}")
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["duplicate"] is False, r.json

    balance = partner.get(f"/api/v1/partners/{partner_id}/balance").json["items"]
    assert [(b["currency"], b["available"], b["paid"]) for b in balance] == [("USD", "8.00", "0.00")]
    # 8.00 is under the default 50.00 threshold: nothing to pay until the admin lowers it for this partner.
    assert finance.post("/api/v1/payout-runs", json={}).json["payouts"] == []
    assert admin.patch(f"/api/v1/partners/{partner_id}", json={"payout_min_amount": "5.00"}).status_code == 200

    if fake is not None:
        r = partner.post(f"/api/v1/partners/{partner_id}/stripe/onboarding")
        assert r.status_code == 200, r.json
        assert r.json["url"].startswith("https://connect.stripe.com/")
        fake.enable_account(r.json["account_id"])  # the partner completes Stripe's onboarding
        body = json.dumps(fake.events[-1]).encode()
        r = client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": fake.sign_webhook(body, WEBHOOK_SECRET)}
        )
        assert r.status_code == 200, r.json
        assert admin.get(f"/api/v1/partners/{partner_id}").json["stripe_payouts_enabled"] is True

    r = finance.post("/api/v1/payout-runs", json={})
    assert r.status_code == 201, r.json
    (built,) = r.json["payouts"]
    assert (built["status"], built["amount"], built["currency"]) == ("pending_approval", "8.00", "USD")
    listed = finance.get("/api/v1/payouts?status=pending_approval").json["items"]
    assert [p["id"] for p in listed] == [built["id"]]
    r = finance.post(f"/api/v1/payouts/{built['id']}/approve")
    assert (r.status_code, r.json["status"]) == (200, "approved")
    assert finance.post("/api/v1/payout-runs", json={}).status_code == 201
    r = finance.get(f"/api/v1/payouts/{built['id']}")
    assert (r.json["status"], r.json["amount"]) == ("paid", "8.00")

    balance = partner.get(f"/api/v1/partners/{partner_id}/balance").json["items"]
    assert [(b["available"], b["in_payout"], b["paid"]) for b in balance] == [("0.00", "0.00", "8.00")]
    kinds = [e["kind"] for e in partner.get(f"/api/v1/partners/{partner_id}/ledger").json["items"]]
    assert kinds == ["commission", "payout"]
    if fake is not None:
        (transfer,) = fake.transfers
        assert (transfer["amount"], transfer["currency"], transfer["id"]) == (800, "usd", r.json["reference"])
    else:
        assert r.json["reference"] == f"manual:payout-{built['id']}"
        assert len(list(exports.glob("*.csv"))) == 1
    check_invariants(session, fake)
