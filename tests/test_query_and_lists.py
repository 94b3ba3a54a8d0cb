"""Every API operation refuses unknown query parameters, and every list answers one envelope.

Both tests are built from the app's own routes and OpenAPI document, so a new endpoint is covered
without being named here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from network.app import create_app
from tests.conftest import make_settings
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import make_commission, make_shop

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _app_routes() -> tuple[list[tuple[str, str]], list[str]]:
    """Return (every API operation as (method, path), every list's path), read from a throwaway app."""
    app = create_app(make_settings("sqlite://"))  # nothing connects: routes and the document only
    try:
        operations = sorted(
            (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
            for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/api/v1/")
            for method in rule.methods or ()
            if method in _METHODS
        )
        spec = app.test_client().get("/api/openapi.json").json
    finally:
        app.extensions["network.db"].dispose()
    schemas = spec["components"]["schemas"]
    lists = []
    for path, operations_doc in spec["paths"].items():
        content = operations_doc.get("get", {}).get("responses", {}).get("200", {}).get("content", {})
        schema = content.get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
        if schema.get("properties", {}).get("items", {}).get("type") == "array":
            lists.append(path)
    return operations, sorted(lists)


OPERATIONS, LISTS = _app_routes()


def test_the_routes_were_found():
    # The parametrised tests below are only as good as what they iterate over.
    assert ("GET", "/api/v1/payouts") in OPERATIONS and ("POST", "/api/v1/payout-runs") in OPERATIONS
    assert {"/api/v1/offers", "/api/v1/partners/{partner_id}/offer-postbacks", "/api/v1/reports"} <= set(LISTS)


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_operation_refuses_an_unknown_query_parameter(client, session, method, path):
    admin = Api(client, make_key(session, role="admin"))
    url = re.sub(r"\{\w+\}", "1", path)
    r = getattr(admin, method.lower())(f"{url}?sort=amount%3Bdrop+table+x", json={})
    assert r.status_code == 400, r.data
    assert r.json["code"] == "validation_error" and r.json["errors"] == {"sort": ["Unknown field."]}
    assert "sort" in r.json["message"]


def test_the_tracking_and_plain_routes_still_take_any_query(client):
    # Clicks carry sub ids, utm_* and anything a partner appends; a load balancer may add its own.
    assert client.get("/c/no-such-code?utm_source=x&anything=1").status_code == 404  # not 400
    assert client.get("/healthz?probe=1").status_code in (200, 503)


@dataclass
class World:
    admin: Api
    ids: dict[str, int]


@pytest.fixture
def world(client, session) -> World:
    shop = make_shop(session)
    partner = make_partner(session, name="Deal Blog")
    for payout in ("10.00", "20.00"):
        make_commission(session, offer=shop.offer, partner=partner, payout=payout)
    euro = make_shop(session, currency="EUR", name="Euro Shop")
    make_commission(session, offer=euro.offer, partner=partner, payout="5.00")
    make_key(session, role="finance")
    session.flush()
    ids = {"partner_id": partner.id, "offer_id": shop.offer.id, "brand_id": shop.brand.id}
    return World(Api(client, make_key(session, role="admin")), ids)


@pytest.mark.parametrize("path", LISTS)
def test_every_list_answers_items_limit_and_next_after(world, path):
    url = path.format(**world.ids)  # a list with a new path parameter needs its id in `world`
    first = world.admin.get(f"{url}?limit=1")
    assert first.status_code == 200, first.json
    assert {"items", "limit", "next_after"} <= set(first.json)
    assert first.json["limit"] == 1 and len(first.json["items"]) <= 1
    if first.json["items"]:
        # A full page carries the cursor of the next one, which starts after it.
        assert isinstance(first.json["next_after"], int)
        second = world.admin.get(f"{url}?limit=1&after={first.json['next_after']}")
        assert second.status_code == 200 and second.json["items"] != first.json["items"]
    else:
        assert first.json["next_after"] is None
    for bad, name in (("limit=0", "limit"), (f"limit={10**9}", "limit"), ("after=-1", "after"), ("after=x", "after")):
        r = world.admin.get(f"{url}?{bad}")
        assert r.status_code == 400 and name in r.json["errors"], (bad, r.json)
