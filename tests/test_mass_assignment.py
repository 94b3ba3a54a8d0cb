"""Mass assignment (RELIABILITY.md case 17): unknown fields and fields a caller may not write
(`status`, `payout`, `brand_id`, `stripe_account_id`, `allow_loss`, ids, tokens, ...) are refused
with 400 naming the field, and nothing changes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner
from tests.snapshots import snapshot


@pytest.fixture
def ctx(session) -> dict[str, Any]:
    brand = make_brand(session)
    other = make_brand(session, name="Other")
    partner = make_partner(session)
    offer = make_offer(session, brand=brand, visibility="approval")
    session.flush()
    return {
        "brand": brand.id,
        "other_brand": other.id,
        "partner": partner.id,
        "offer": offer.id,
        "admin": make_key(session, role="admin"),
        "brand_key": make_key(session, role="brand", brand=brand),
        "partner_key": make_key(session, role="partner", partner=partner),
    }


def _offer_body(**extra: Any) -> dict[str, Any]:
    return {"name": "N", "destination_url": "https://shop.example/", "events": [cpa_event()], **extra}


#: (who, method, path, body, the field that must be named).
CASES = [
    ("brand_key", "POST", "/api/v1/offers", _offer_body(status="active"), "status"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(brand_id="{other_brand}"), "brand_id"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(allow_loss=True), "allow_loss"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(payout_min_amount="1.00"), "payout_min_amount"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(id=999), "id"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(payout="100.00"), "payout"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(created_at="2020-01-01T00:00:00Z"), "created_at"),
    ("brand_key", "POST", "/api/v1/offers", _offer_body(secret_flag=1), "secret_flag"),
    (
        "brand_key",
        "POST",
        "/api/v1/offers",
        _offer_body(events=[{**cpa_event(), "id": 1}]),
        "events[0].id",
    ),
    (
        "brand_key",
        "POST",
        "/api/v1/offers",
        _offer_body(caps=[{"metric": "clicks", "period": "day", "limit": 5, "used": 0}]),
        "caps[0].used",
    ),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"status": "archived"}, "status"),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"brand_id": "{other_brand}"}, "brand_id"),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"allow_loss": True}, "allow_loss"),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"payout_min_amount": "1.00"}, "payout_min_amount"),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"currency": "EUR"}, "currency"),
    ("brand_key", "PATCH", "/api/v1/offers/{offer}", {"id": 5}, "id"),
    ("brand_key", "PATCH", "/api/v1/brands/{brand}", {"postback_token": "pbt_mine"}, "postback_token"),
    ("brand_key", "PATCH", "/api/v1/brands/{brand}", {"currency": "EUR"}, "currency"),
    ("brand_key", "PATCH", "/api/v1/brands/{brand}", {"id": 5}, "id"),
    (
        "brand_key",
        "PUT",
        "/api/v1/offers/{offer}/overrides",
        {"partner_id": "{partner}", "event": "sale", "payout": "1.00", "revenue": "0.50"},
        "revenue",
    ),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"status": "active"}, "status"),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"stripe_account_id": "acct_123"}, "stripe_account_id"),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"stripe_payouts_enabled": True}, "stripe_payouts_enabled"),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"payout_min_amount": "1.00"}, "payout_min_amount"),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"postback_secret": "whsec_mine"}, "postback_secret"),
    ("partner_key", "PATCH", "/api/v1/partners/{partner}", {"id": 7}, "id"),
    ("partner_key", "POST", "/api/v1/offers/{offer}/applications", {"status": "approved"}, "status"),
    ("partner_key", "POST", "/api/v1/offers/{offer}/applications", {"kind": "invitation"}, "kind"),
    ("partner_key", "POST", "/api/v1/offers/{offer}/applications", {"partner_id": 99}, "partner_id"),
    (
        "admin",
        "POST",
        "/api/v1/offers/{offer}/invitations",
        {"partner_id": "{partner}", "status": "rejected"},
        "status",
    ),
    ("admin", "POST", "/api/v1/keys", {"role": "admin", "key_hash": "0" * 64}, "key_hash"),
    ("admin", "POST", "/api/v1/keys", {"role": "admin", "revoked_at": None}, "revoked_at"),
    ("admin", "POST", "/api/v1/brands", {"name": "N", "currency": "USD", "postback_token": "pbt_x"}, "postback_token"),
    ("admin", "POST", "/api/v1/partners", {"name": "N", "stripe_account_id": "acct_1"}, "stripe_account_id"),
    ("admin", "POST", "/api/v1/partners", {"name": "N", "postback_secret": "whsec_x"}, "postback_secret"),
    ("admin", "POST", "/api/v1/partners/{partner}/status", {"status": "active", "name": "N"}, "name"),
]


def _fill(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ctx[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ctx)
    if isinstance(value, dict):
        return {k: _fill(v, ctx) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ctx) for v in value]
    return value


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "field"), CASES, ids=[f"{w} {m} {p} {f}" for w, m, p, _, f in CASES]
)
def test_a_field_the_caller_may_not_write_is_refused_and_nothing_changes(
    client, session, ctx, who: str, method: str, path: str, body: dict[str, Any], field: str
):
    before = snapshot(session)
    response = getattr(Api(client, ctx[who]), method.lower())(_fill(path, ctx), json=_fill(body, ctx))
    assert response.status_code == 400, (response.status_code, response.json)
    assert response.json["code"] == "validation_error"
    assert field in response.json["errors"], response.json
    assert field in response.json["message"]
    assert snapshot(session) == before


def test_the_admin_may_write_what_a_brand_may_not(client, ctx):
    """The privileged fields exist: an admin sets them (positive control for the refusals above)."""
    admin = Api(client, ctx["admin"])
    r = admin.post(
        "/api/v1/offers", json=_offer_body(brand_id=ctx["brand"], allow_loss=True, payout_min_amount="20.00")
    )
    assert r.status_code == 201, r.json
    assert r.json["allow_loss"] is True and r.json["payout_min_amount"] == "20.00"
    r = admin.patch(f"/api/v1/partners/{ctx['partner']}", json={"payout_min_amount": "100.00"})
    assert r.status_code == 200 and r.json["payout_min_amount"] == "100.00"
    r = admin.post(f"/api/v1/partners/{ctx['partner']}/status", json={"status": "suspended"})
    assert r.status_code == 200 and r.json["status"] == "suspended"


def test_a_partner_may_change_its_own_profile(client, ctx):
    r = Api(client, ctx["partner_key"]).patch(
        f"/api/v1/partners/{ctx['partner']}", json={"name": "Renamed", "email": "new@dealblog.example"}
    )
    assert r.status_code == 200 and r.json["name"] == "Renamed" and r.json["status"] == "active"
