"""Brands: created by an admin with a postback token that can be rotated; read by admin, finance
and the brand itself (the token only by admin and the brand)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.factories import Api, make_brand, make_key


@pytest.fixture
def admin(client, session) -> Api:
    return Api(client, make_key(session, role="admin"))


def test_admin_creates_a_brand_with_a_postback_token(admin):
    r = admin.post("/api/v1/brands", json={"name": "Acme Shop", "currency": "USD"})
    assert r.status_code == 201, r.json
    assert r.json["name"] == "Acme Shop" and r.json["currency"] == "USD"
    assert r.json["postback_token"].startswith("pbt_") and len(r.json["postback_token"]) >= 30
    assert r.json["share_txn_id"] is False and r.json["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "A", "currency": "usd"}, "currency"),
        ({"name": "A", "currency": "XYZ"}, "currency"),
        ({"name": "A", "currency": "US"}, "currency"),
        ({"name": "", "currency": "USD"}, "name"),
        ({"currency": "USD"}, "name"),
        ({"name": "A"}, "currency"),
        ({"name": "A" * 201, "currency": "USD"}, "name"),
    ],
)
def test_a_bad_brand_is_refused_naming_the_field(admin, session, body, field):
    r = admin.post("/api/v1/brands", json=body)
    assert r.status_code == 400 and field in r.json["errors"] and field in r.json["message"], r.json
    assert session.execute(text("SELECT count(*) FROM brands")).scalar() == 0


def test_token_is_shown_to_admin_and_the_brand_but_not_to_finance(client, session):
    brand = make_brand(session)
    session.flush()
    for role, shown in (("admin", True), ("finance", False)):
        r = Api(client, make_key(session, role=role)).get(f"/api/v1/brands/{brand.id}")
        assert r.status_code == 200 and ("postback_token" in r.json) is shown
    r = Api(client, make_key(session, role="brand", brand=brand)).get(f"/api/v1/brands/{brand.id}")
    assert r.json["postback_token"] == brand.postback_token
    listed = Api(client, make_key(session, role="admin")).get("/api/v1/brands").json["items"]
    assert all("postback_token" not in item for item in listed)


def test_rotating_the_token_replaces_it_at_once(client, session):
    brand = make_brand(session)
    old = brand.postback_token
    api = Api(client, make_key(session, role="brand", brand=brand))
    r = api.post(f"/api/v1/brands/{brand.id}/postback-token")
    assert r.status_code == 200 and r.json["postback_token"] != old
    stored = session.execute(text("SELECT postback_token FROM brands WHERE id = :id"), {"id": brand.id}).scalar()
    assert stored == r.json["postback_token"]


def test_a_brand_renames_itself_and_sets_txn_sharing(client, session):
    brand = make_brand(session)
    r = Api(client, make_key(session, role="brand", brand=brand)).patch(
        f"/api/v1/brands/{brand.id}", json={"name": "Acme Two", "share_txn_id": True}
    )
    assert r.status_code == 200 and r.json["name"] == "Acme Two" and r.json["share_txn_id"] is True
    assert r.json["currency"] == "USD"


def test_brands_page_with_a_bounded_limit(admin, session):
    ids = [make_brand(session, name=f"B{i}").id for i in range(5)]
    session.flush()
    first = admin.get("/api/v1/brands?limit=3").json
    assert [b["id"] for b in first["items"]] == ids[:3] and first["limit"] == 3
    second = admin.get(f"/api/v1/brands?limit=3&after={first['next_after']}").json
    assert [b["id"] for b in second["items"]] == ids[3:] and second["next_after"] is None


@pytest.mark.parametrize(
    "query",
    ["limit=501", "limit=0", "limit=-1", "limit=1000000000", "limit=abc", "after=-1", "sort=amount;drop table x"],
)
def test_out_of_bounds_or_unknown_list_parameters_are_400(admin, query):
    r = admin.get(f"/api/v1/brands?{query}")
    name = query.split("=")[0]
    assert r.status_code == 400 and name in r.json["errors"] and name in r.json["message"], r.json
