"""Tenant isolation (RELIABILITY.md cases 16-18, SPEC §1): two brands and two partners try every
endpoint of keys, brands, partners and offers on each other's objects.

Missing or unknown key: 401. A role that may not act: 403. Another tenant's object: 404, and
nothing changes. Lists never include another tenant's rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.accounts import service as accounts
from network.auth import SYSTEM
from network.customers import service as customers
from network.customers.models import Customer
from network.offers import service as offers
from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner
from tests.snapshots import snapshot


@dataclass
class Tenant:
    """One brand or partner, its key and the objects it owns."""

    key: str
    key_id: int
    ids: dict[str, int]


@dataclass
class World:
    admin: str
    finance: str
    x: Tenant  # brand X
    y: Tenant  # brand Y
    a: Tenant  # partner A
    b: Tenant  # partner B


def _key(session: Session, **binding: Any) -> tuple[str, int]:
    row, key = accounts.create_key(session, **binding)
    return key, row.id


def _brand_world(session: Session, name: str, partner_a: int, partner_b: int) -> Tenant:
    brand = make_brand(session, name=name)
    offer = make_offer(session, brand=brand, name=f"{name} public")
    approval = make_offer(session, brand=brand, name=f"{name} approval", visibility="approval")
    private = make_offer(session, brand=brand, name=f"{name} private", visibility="private")
    draft = make_offer(session, brand=brand, name=f"{name} draft", status="draft")
    # Partner B applied to the approval offer and was invited to the private one; A was not.
    application = offers.apply_to_offer(
        session, accounts.Principal(accounts.Role.PARTNER, partner_id=partner_b), approval.id
    )
    offers.invite(session, SYSTEM, private.id, partner_b)
    override = offers.set_override(
        session, SYSTEM, offer.id, {"partner_id": partner_b, "event": "sale", "payout": "4.00"}
    )
    key, key_id = _key(session, role="brand", brand_id=brand.id)
    # A coupon and a bound customer of partner B on the public offer.
    coupon = customers.create_coupon(session, SYSTEM, offer_id=offer.id, partner_id=partner_b, code=f"{name[-1]}10")
    customer = Customer(brand_id=brand.id, customer_id="cus_1", partner_id=partner_b, link_id=coupon.link_id,
                        offer_id=offer.id)  # fmt: skip
    session.add(customer)
    session.flush()
    ids = {
        "brand": brand.id,
        "offer": offer.id,
        "approval_offer": approval.id,
        "private_offer": private.id,
        "draft_offer": draft.id,
        "access": application.id,
        "override": override.id,
        "key": key_id,
        "coupon": coupon.id,
        "customer": customer.id,
    }
    return Tenant(key, key_id, ids)


@pytest.fixture
def world(session: Session) -> World:
    a = make_partner(session, name="Partner A")
    b = make_partner(session, name="Partner B")
    x = _brand_world(session, "Brand X", a.id, b.id)
    y = _brand_world(session, "Brand Y", a.id, b.id)
    a_key, a_key_id = _key(session, role="partner", partner_id=a.id)
    b_key, b_key_id = _key(session, role="partner", partner_id=b.id)
    session.flush()
    return World(
        admin=make_key(session, role="admin"),
        finance=make_key(session, role="finance"),
        x=x,
        y=y,
        a=Tenant(a_key, a_key_id, {"partner": a.id, "key": a_key_id}),
        b=Tenant(b_key, b_key_id, {"partner": b.id, "key": b_key_id}),
    )


def _call(client: Any, key: str | None, method: str, path: str, body: Any = None) -> Any:
    api = Api(client, key)
    kwargs = {"json": body} if body is not None else {}
    return getattr(api, method.lower())(path, **kwargs)


# ---- brand X on brand Y's objects: 404 ----------------------------------------------------------

#: (method, path, body). {name} is brand Y's object; {own_name} is brand X's own.
BRAND_CROSS = [
    ("GET", "/api/v1/coupons/{coupon}", None),
    ("DELETE", "/api/v1/coupons/{coupon}", None),
    ("POST", "/api/v1/coupons", {"offer_id": "{offer}", "partner_id": "{partner_a}", "code": "MINE"}),
    ("GET", "/api/v1/customers/{customer}", None),
    ("DELETE", "/api/v1/customers/{customer}", None),
    ("POST", "/api/v1/customers/{customer}/move", {"partner_id": "{partner_a}"}),
    ("GET", "/api/v1/brands/{brand}", None),
    ("PATCH", "/api/v1/brands/{brand}", {"name": "taken over"}),
    ("POST", "/api/v1/brands/{brand}/postback-token", None),
    ("GET", "/api/v1/offers/{offer}", None),
    ("GET", "/api/v1/offers/{draft_offer}", None),
    ("PATCH", "/api/v1/offers/{offer}", {"name": "taken over"}),
    ("POST", "/api/v1/offers/{draft_offer}/activate", None),
    ("POST", "/api/v1/offers/{offer}/pause", None),
    ("POST", "/api/v1/offers/{offer}/archive", None),
    ("GET", "/api/v1/offers/{approval_offer}/applications", None),
    ("POST", "/api/v1/offers/{approval_offer}/applications/{access}/approve", None),
    ("POST", "/api/v1/offers/{approval_offer}/applications/{access}/reject", None),
    # Y's application reached through X's own offer id.
    ("POST", "/api/v1/offers/{own_approval_offer}/applications/{access}/approve", None),
    ("POST", "/api/v1/offers/{private_offer}/invitations", {"partner_id": "{partner_a}"}),
    ("GET", "/api/v1/offers/{offer}/overrides", None),
    ("PUT", "/api/v1/offers/{offer}/overrides", {"partner_id": "{partner_a}", "event": "sale", "payout": "1.00"}),
    ("DELETE", "/api/v1/offers/{offer}/overrides/{override}", None),
    ("DELETE", "/api/v1/offers/{own_offer}/overrides/{override}", None),
    ("GET", "/api/v1/keys/{key}", None),
    ("POST", "/api/v1/keys/{key}/revoke", None),
    # Billing: brand Y's balances.
    ("GET", "/api/v1/brands/{brand}/billing", None),
]

#: (method, path, body). {name} is partner B's object (or an offer A may not see).
PARTNER_CROSS = [
    ("GET", "/api/v1/coupons/{coupon}", None),
    ("GET", "/api/v1/customers/{customer}", None),
    ("GET", "/api/v1/partners/{partner}", None),
    ("PATCH", "/api/v1/partners/{partner}", {"name": "taken over"}),
    ("GET", "/api/v1/partners/{partner}/postback-secret", None),
    ("POST", "/api/v1/partners/{partner}/postback-secret", None),
    ("GET", "/api/v1/keys/{key}", None),
    ("POST", "/api/v1/keys/{key}/revoke", None),
    ("GET", "/api/v1/offers/{private_offer}", None),
    ("GET", "/api/v1/offers/{draft_offer}", None),
    ("GET", "/api/v1/offers/{private_offer}/applications", None),
    ("POST", "/api/v1/offers/{private_offer}/applications", {}),
    ("POST", "/api/v1/offers/{draft_offer}/applications", {}),
]


def _fill(template: Any, values: dict[str, Any]) -> Any:
    """Fill {name} placeholders in a path or a JSON body (a whole "{name}" string becomes the integer)."""
    if isinstance(template, str):
        whole = re.fullmatch(r"\{(\w+)\}", template)
        if whole and not template.startswith("/"):
            return values[whole.group(1)]
        return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def _brand_values(world: World) -> dict[str, Any]:
    own = {f"own_{name}": value for name, value in world.x.ids.items()}
    return {**world.y.ids, **own, "partner_a": world.a.ids["partner"]}


def _partner_values(world: World) -> dict[str, Any]:
    # Brand X's private and draft offers: B was invited to the private one, A never was.
    x = world.x.ids
    return {**world.b.ids, "private_offer": x["private_offer"], "draft_offer": x["draft_offer"],
            "coupon": x["coupon"], "customer": x["customer"]}  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), BRAND_CROSS, ids=[f"{m} {p}" for m, p, _ in BRAND_CROSS])
def test_a_brand_gets_404_for_another_brands_objects_and_nothing_changes(
    client, session, world: World, method: str, path: str, body: Any
):
    before = snapshot(session)
    values = _brand_values(world)
    response = _call(client, world.x.key, method, _fill(path, values), _fill(body, values))
    assert response.status_code == 404, (response.status_code, response.json)
    assert response.json["code"] == "not_found"
    assert snapshot(session) == before


@pytest.mark.parametrize(("method", "path", "body"), PARTNER_CROSS, ids=[f"{m} {p}" for m, p, _ in PARTNER_CROSS])
def test_a_partner_gets_404_for_another_partners_objects_and_nothing_changes(
    client, session, world: World, method: str, path: str, body: Any
):
    before = snapshot(session)
    values = _partner_values(world)
    response = _call(client, world.a.key, method, _fill(path, values), _fill(body, values))
    assert response.status_code == 404, (response.status_code, response.json)
    assert snapshot(session) == before


def test_the_same_requests_succeed_for_the_owner(client, world: World):
    """The 404s above are about tenancy, not broken endpoints: the owner gets through."""
    y, b = world.y, world.b
    for path in (
        "/api/v1/brands/{brand}",
        "/api/v1/offers/{offer}",
        "/api/v1/offers/{offer}/overrides",
        "/api/v1/offers/{approval_offer}/applications",
        "/api/v1/keys/{key}",
    ):
        response = _call(client, y.key, "GET", _fill(path, y.ids))
        assert response.status_code == 200, (path, response.json)
    for path in ("/api/v1/partners/{partner}", "/api/v1/partners/{partner}/postback-secret", "/api/v1/keys/{key}"):
        assert _call(client, b.key, "GET", _fill(path, b.ids)).status_code == 200, path
    private = world.x.ids["private_offer"]
    assert _call(client, b.key, "GET", f"/api/v1/offers/{private}").status_code == 200


# ---- lists never include foreign rows -----------------------------------------------------------


def _ids(response: Any) -> set[int]:
    assert response.status_code == 200, response.json
    return {item["id"] for item in response.json["items"]}


def test_a_brand_lists_only_its_own_rows(client, world: World):
    x, y = world.x, world.y
    own_offers = {x.ids[k] for k in ("offer", "approval_offer", "private_offer", "draft_offer")}
    assert _ids(_call(client, x.key, "GET", "/api/v1/offers")) == own_offers
    # A filter naming the other brand narrows the brand's own rows; it never widens them.
    assert _ids(_call(client, x.key, "GET", f"/api/v1/offers?brand_id={y.ids['brand']}")) == set()
    assert _ids(_call(client, x.key, "GET", "/api/v1/brands")) == {x.ids["brand"]}
    applications = _call(client, x.key, "GET", f"/api/v1/offers/{x.ids['approval_offer']}/applications")
    assert {item["offer_id"] for item in applications.json["items"]} == {x.ids["approval_offer"]}
    assert _ids(_call(client, x.key, "GET", f"/api/v1/offers/{x.ids['offer']}/overrides")) == {x.ids["override"]}
    assert _ids(_call(client, x.key, "GET", "/api/v1/coupons")) == {x.ids["coupon"]}
    assert _ids(_call(client, x.key, "GET", "/api/v1/customers")) == {x.ids["customer"]}
    # Partner A has none of B's coupons or customers; B has both brands'.
    assert _ids(_call(client, world.a.key, "GET", "/api/v1/coupons")) == set()
    assert _ids(_call(client, world.a.key, "GET", "/api/v1/customers")) == set()
    assert _ids(_call(client, world.b.key, "GET", "/api/v1/customers")) == {x.ids["customer"], y.ids["customer"]}


def test_a_partner_lists_only_what_is_open_or_granted_to_it(client, world: World):
    a, b, x, y = world.a, world.b, world.x, world.y
    public = {x.ids["offer"], x.ids["approval_offer"], y.ids["offer"], y.ids["approval_offer"]}
    assert _ids(_call(client, a.key, "GET", "/api/v1/offers")) == public
    assert _ids(_call(client, b.key, "GET", "/api/v1/offers")) == public | {
        x.ids["private_offer"],
        y.ids["private_offer"],
    }
    assert _ids(_call(client, a.key, "GET", "/api/v1/offers?status=draft")) == set()
    assert _ids(_call(client, a.key, "GET", "/api/v1/partners")) == {a.ids["partner"]}
    # B's application to X's approval offer is invisible to A.
    assert _ids(_call(client, a.key, "GET", f"/api/v1/offers/{x.ids['approval_offer']}/applications")) == set()
    assert _ids(_call(client, b.key, "GET", f"/api/v1/offers/{x.ids['approval_offer']}/applications")) == {
        x.ids["access"]
    }


def test_a_partner_sees_its_own_override_and_never_another_partners(client, world: World):
    x = world.x
    offer_for_b = _call(client, world.b.key, "GET", f"/api/v1/offers/{x.ids['offer']}").json
    offer_for_a = _call(client, world.a.key, "GET", f"/api/v1/offers/{x.ids['offer']}").json
    assert offer_for_b["events"][0]["payout"] == "4.00"
    assert offer_for_a["events"][0]["payout"] == "5.00"
    for view in (offer_for_a, offer_for_b):
        assert "revenue" not in view["events"][0] and "caps" not in view and "allow_loss" not in view


# ---- roles that may not act: 403 ----------------------------------------------------------------

#: A valid body, so that what refuses the request is the role, not the input.
NEW_OFFER = {"name": "N", "destination_url": "https://a.example/", "events": [cpa_event()], "brand_id": "{brand}"}

#: (actor, method, path, body): the actor's role may not do this at all, even on objects it can see.
ROLE_FORBIDDEN = [
    ("partner", "GET", "/api/v1/brands", None),
    ("partner", "GET", "/api/v1/brands/{brand}", None),
    ("partner", "POST", "/api/v1/brands", {"name": "N", "currency": "USD"}),
    ("partner", "POST", "/api/v1/offers", NEW_OFFER),
    ("partner", "PATCH", "/api/v1/offers/{offer}", {"name": "N"}),
    ("partner", "POST", "/api/v1/offers/{offer}/pause", None),
    ("partner", "POST", "/api/v1/offers/{approval_offer}/applications/{access}/approve", None),
    ("partner", "POST", "/api/v1/offers/{private_offer}/invitations", {"partner_id": "{partner}"}),
    ("partner", "GET", "/api/v1/offers/{offer}/overrides", None),
    (
        "partner",
        "PUT",
        "/api/v1/offers/{offer}/overrides",
        {"partner_id": "{partner}", "event": "sale", "payout": "9.00"},
    ),
    ("partner", "DELETE", "/api/v1/offers/{offer}/overrides/{override}", None),
    ("partner", "POST", "/api/v1/partners/{partner}/status", {"status": "active"}),
    ("partner", "POST", "/api/v1/partners", {"name": "N"}),
    ("partner", "GET", "/api/v1/keys", None),
    ("partner", "POST", "/api/v1/keys", {"role": "admin"}),
    ("brand", "GET", "/api/v1/partners", None),
    ("brand", "GET", "/api/v1/partners/{partner}", None),
    ("brand", "PATCH", "/api/v1/partners/{partner}", {"name": "N"}),
    ("brand", "GET", "/api/v1/partners/{partner}/postback-secret", None),
    ("brand", "POST", "/api/v1/partners/{partner}/postback-secret", None),
    ("brand", "POST", "/api/v1/partners/{partner}/status", {"status": "suspended"}),
    ("brand", "POST", "/api/v1/partners", {"name": "N"}),
    ("brand", "POST", "/api/v1/brands", {"name": "N", "currency": "USD"}),
    ("brand", "POST", "/api/v1/offers/{approval_offer}/applications", {}),
    ("brand", "GET", "/api/v1/keys", None),
    ("brand", "POST", "/api/v1/keys", {"role": "brand", "brand_id": "{brand}"}),
    ("finance", "POST", "/api/v1/offers", NEW_OFFER),
    ("finance", "PATCH", "/api/v1/offers/{offer}", {"name": "N"}),
    ("finance", "POST", "/api/v1/offers/{offer}/pause", None),
    ("finance", "POST", "/api/v1/offers/{draft_offer}/activate", None),
    ("finance", "POST", "/api/v1/offers/{offer}/archive", None),
    ("finance", "POST", "/api/v1/offers/{approval_offer}/applications/{access}/reject", None),
    ("finance", "POST", "/api/v1/offers/{private_offer}/invitations", {"partner_id": "{partner}"}),
    (
        "finance",
        "PUT",
        "/api/v1/offers/{offer}/overrides",
        {"partner_id": "{partner}", "event": "sale", "payout": "1.00"},
    ),
    ("finance", "PATCH", "/api/v1/brands/{brand}", {"name": "N"}),
    ("finance", "POST", "/api/v1/brands/{brand}/postback-token", None),
    ("finance", "POST", "/api/v1/brands", {"name": "N", "currency": "USD"}),
    ("finance", "POST", "/api/v1/partners", {"name": "N"}),
    ("finance", "PATCH", "/api/v1/partners/{partner}", {"name": "N"}),
    ("finance", "POST", "/api/v1/partners/{partner}/status", {"status": "suspended"}),
    ("finance", "GET", "/api/v1/partners/{partner}/postback-secret", None),
    ("finance", "GET", "/api/v1/keys", None),
    ("finance", "POST", "/api/v1/keys", {"role": "admin"}),
    # Billing: partners see nothing of it; brands read, never decide.
    ("partner", "GET", "/api/v1/invoices", None),
    ("partner", "GET", "/api/v1/invoices/{brand}", None),
    ("partner", "GET", "/api/v1/invoices/{brand}/pdf", None),
    ("partner", "GET", "/api/v1/invoices/export", None),
    ("partner", "GET", "/api/v1/brands/{brand}/billing", None),
    ("partner", "POST", "/api/v1/invoice-runs", {}),
    ("brand", "POST", "/api/v1/invoice-runs", {}),
    ("brand", "GET", "/api/v1/invoices/export", None),
    ("brand", "POST", "/api/v1/invoices/{brand}/issue", {}),
    ("brand", "POST", "/api/v1/invoices/{brand}/void", {}),
    ("brand", "POST", "/api/v1/invoices/{brand}/mark-paid", {"reference": "r"}),
    ("brand", "POST", "/api/v1/invoices/{brand}/mark-uncollectible", {}),
    ("brand", "PATCH", "/api/v1/brands/{brand}/billing", {"credit_limit": "1000000.00"}),
    ("brand", "POST", "/api/v1/brands/{brand}/billing/prepayments", {"currency": "USD", "amount": "1.00"}),
    ("partner", "PATCH", "/api/v1/brands/{brand}/billing", {"credit_limit": "1.00"}),
    ("partner", "POST", "/api/v1/brands/{brand}/billing/prepayments", {"currency": "USD", "amount": "1.00"}),
    ("admin", "POST", "/api/v1/offers/{approval_offer}/applications", {}),
]


def _actor(world: World, role: str) -> str:
    return {"partner": world.a.key, "brand": world.x.key, "finance": world.finance, "admin": world.admin}[role]


@pytest.mark.parametrize(
    ("role", "method", "path", "body"), ROLE_FORBIDDEN, ids=[f"{r} {m} {p}" for r, m, p, _ in ROLE_FORBIDDEN]
)
def test_a_role_that_may_not_act_gets_403_and_nothing_changes(
    client, session, world: World, role: str, method: str, path: str, body: Any
):
    values = {**world.x.ids, "partner": world.a.ids["partner"]}
    before = snapshot(session)
    response = _call(client, _actor(world, role), method, _fill(path, values), _fill(body, values))
    assert response.status_code == 403, (response.status_code, response.json)
    assert response.json["code"] == "forbidden"
    assert snapshot(session) == before


# ---- no key, unknown key, revoked key: 401 on every API endpoint --------------------------------


def _api_routes(app: Any) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        routes.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return sorted(routes)


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer nk_admin_unknown", "Basic YWRtaW46YWRtaW4=", "nk_admin_x", "revoked"],
)
def test_every_api_endpoint_answers_401_without_a_valid_key(app, client, session, authorization: str | None):
    if authorization == "revoked":
        row, key = accounts.create_key(session, role="admin")
        accounts.revoke_key(session, SYSTEM, row.id)
        session.flush()
        authorization = f"Bearer {key}"
    headers = {} if authorization is None else {"Authorization": authorization}
    routes = _api_routes(app)
    assert len(routes) >= 20
    wrong = []
    for method, path in routes:
        response = getattr(client, method.lower())(path, headers=headers, json={})
        if response.status_code != 401 or response.json.get("code") != "unauthorized":
            wrong.append((method, path, response.status_code))
    assert not wrong


def test_every_endpoint_of_this_issue_is_in_the_matrix(app):
    """A new keys/brands/partners/offers endpoint must join the tenant or role matrix above."""
    covered = set()
    for method, path, _ in BRAND_CROSS + PARTNER_CROSS:
        covered.add((method, re.sub(r"\{\w+\}", "1", path)))
    for _, method, path, _ in ROLE_FORBIDDEN:
        covered.add((method, re.sub(r"\{\w+\}", "1", path)))
    # Collections every role may read (their rows are checked by the list tests above).
    covered |= {("GET", "/api/v1/offers"), ("GET", "/api/v1/partners"), ("GET", "/api/v1/brands")}
    mine = {
        (method, re.sub(r"<[^>]+>", "1", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] in ("accounts", "partners", "offers")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert mine - covered == set()


def test_cpa_event_builder_is_the_default_offer_event():
    # The fixture's override figures assume the factory's default event.
    assert cpa_event()["key"] == "sale" and cpa_event()["payout"] == "5.00"
