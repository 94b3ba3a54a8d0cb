"""API keys (SPEC §1): a readable prefix and >= 128 random bits, stored hashed, shown once, revocable."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text

from network.accounts import service as accounts
from network.accounts.models import ApiKey
from network.auth import Role
from network.errors import Unauthorized
from tests.factories import Api, make_brand, make_key, make_partner


@pytest.fixture
def admin(client, session) -> Api:
    return Api(client, make_key(session, role="admin"))


def test_a_key_is_shown_once_and_stored_only_as_a_hash(admin, session):
    r = admin.post("/api/v1/keys", json={"role": "finance", "label": "books"})
    assert r.status_code == 201, r.json
    key, key_id = r.json["key"], r.json["id"]
    assert key.startswith("nk_finance_") and r.json["prefix"] == key[: len(r.json["prefix"])]
    secret = key.removeprefix("nk_finance_")
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) * 8 >= 128
    row = session.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id}).one()
    assert key not in [str(value) for value in row] and secret not in str(tuple(row))
    # Never shown again: not in the list, not in the item.
    listed = admin.get("/api/v1/keys").json["items"]
    assert key_id in [item["id"] for item in listed]
    assert all("key" not in item and "key_hash" not in item for item in listed)
    item = admin.get(f"/api/v1/keys/{key_id}").json
    assert "key" not in item and item["label"] == "books" and item["revoked_at"] is None


def test_a_new_key_works_at_once_with_its_role_and_binding(client, session, admin):
    brand = make_brand(session)
    session.flush()
    key = admin.post("/api/v1/keys", json={"role": "brand", "brand_id": brand.id}).json["key"]
    r = Api(client, key).get("/api/v1/brands")
    assert r.status_code == 200 and [b["id"] for b in r.json["items"]] == [brand.id]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "brand"}, "brand_id"),
        ({"role": "brand", "brand_id": 999_999}, "brand_id"),
        ({"role": "partner"}, "partner_id"),
        ({"role": "partner", "partner_id": 999_999}, "partner_id"),
        ({"role": "finance", "brand_id": 1}, "role"),
        ({"role": "admin", "partner_id": 1}, "role"),
        ({"role": "root"}, "role"),
        ({}, "role"),
    ],
)
def test_a_key_needs_exactly_the_binding_its_role_has(admin, session, body, field):
    count = session.execute(text("SELECT count(*) FROM api_keys")).scalar()
    r = admin.post("/api/v1/keys", json=body)
    assert r.status_code == 400 and field in r.json["errors"], r.json
    assert session.execute(text("SELECT count(*) FROM api_keys")).scalar() == count


def test_a_partner_key_with_a_brand_is_refused(admin, session):
    partner, brand = make_partner(session), make_brand(session)
    session.flush()
    r = admin.post("/api/v1/keys", json={"role": "partner", "partner_id": partner.id, "brand_id": brand.id})
    assert r.status_code == 400 and "partner_id" in r.json["errors"]


def test_a_revoked_key_is_refused_at_once_and_revoking_again_changes_nothing(client, session, admin):
    key = make_key(session, role="finance")
    finance = Api(client, key)
    assert finance.get("/api/v1/brands").status_code == 200
    key_id = accounts.authenticate(session, f"Bearer {key}").key_id
    r = admin.post(f"/api/v1/keys/{key_id}/revoke")
    assert r.status_code == 200 and r.json["revoked_at"]
    r2 = finance.get("/api/v1/brands")
    assert r2.status_code == 401 and r2.json["code"] == "unauthorized"
    again = admin.post(f"/api/v1/keys/{key_id}/revoke")
    assert again.status_code == 200 and again.json["revoked_at"] == r.json["revoked_at"]


def test_any_key_may_revoke_itself_but_no_other(client, session):
    brand = make_brand(session)
    own, other = make_key(session, role="brand", brand=brand), make_key(session, role="brand", brand=brand)
    own_id = accounts.authenticate(session, f"Bearer {own}").key_id
    other_id = accounts.authenticate(session, f"Bearer {other}").key_id
    api = Api(client, own)
    assert api.get(f"/api/v1/keys/{other_id}").status_code == 404
    assert api.post(f"/api/v1/keys/{other_id}/revoke").status_code == 404
    assert api.get(f"/api/v1/keys/{own_id}").status_code == 200
    assert api.post(f"/api/v1/keys/{own_id}/revoke").status_code == 200
    assert api.get(f"/api/v1/keys/{own_id}").status_code == 401
    assert Api(client, other).get(f"/api/v1/keys/{other_id}").status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(session, scheme):
    key = make_key(session, role="admin")
    assert accounts.authenticate(session, f"{scheme} {key}").role is Role.ADMIN


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ", "Token abc", "Basic YTpi", "nk_admin_abc"])
def test_a_missing_or_malformed_authorization_is_unauthorized(session, header):
    with pytest.raises(Unauthorized):
        accounts.authenticate(session, header)


def test_a_key_differing_in_one_character_is_unknown(session):
    key = make_key(session, role="admin")
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    with pytest.raises(Unauthorized):
        accounts.authenticate(session, f"Bearer {forged}")


def test_keys_list_filters_and_pages(admin, session):
    brand = make_brand(session)
    for _ in range(3):
        make_key(session, role="brand", brand=brand)
    revoked = session.query(ApiKey).filter_by(role="brand").first()
    assert revoked is not None
    accounts.revoke_key(session, accounts.Principal(Role.ADMIN), revoked.id)
    session.flush()
    r = admin.get(f"/api/v1/keys?role=brand&brand_id={brand.id}&revoked=false")
    assert r.status_code == 200 and len(r.json["items"]) == 2
    assert all(item["role"] == "brand" and item["revoked_at"] is None for item in r.json["items"])
    first = admin.get("/api/v1/keys?limit=2").json
    assert len(first["items"]) == 2 and first["next_after"] == first["items"][-1]["id"]
    rest = admin.get(f"/api/v1/keys?limit=2&after={first['next_after']}").json
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in rest["items"]]
    assert ids == sorted(set(ids)) and len(ids) == 4
    # A full page always carries a cursor; the page after the last row is empty and has none.
    last = admin.get(f"/api/v1/keys?limit=2&after={rest['next_after']}").json
    assert last["items"] == [] and last["next_after"] is None


# ---- the CLI ------------------------------------------------------------------------------------


def test_cli_keys_create_prints_the_key_as_its_last_line(app, client, session):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "create", "--role", "admin"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("nk_admin_")
    assert Api(client, key).get("/api/v1/keys").status_code == 200


def test_cli_keys_create_binds_brand_and_partner_keys(app, client, session):
    brand, partner = make_brand(session), make_partner(session)
    session.flush()
    runner = app.test_cli_runner()
    brand_key = runner.invoke(args=["keys", "create", "--role", "brand", "--brand", str(brand.id)])
    partner_key = runner.invoke(args=["keys", "create", "--role", "partner", "--partner", str(partner.id)])
    assert brand_key.exit_code == 0 and partner_key.exit_code == 0
    principal = accounts.authenticate(session, f"Bearer {brand_key.output.strip().splitlines()[-1]}")
    assert principal.role is Role.BRAND and principal.brand_id == brand.id
    principal = accounts.authenticate(session, f"Bearer {partner_key.output.strip().splitlines()[-1]}")
    assert principal.role is Role.PARTNER and principal.partner_id == partner.id


def test_cli_keys_create_refuses_a_brand_key_without_a_brand(app):
    result = app.test_cli_runner().invoke(args=["keys", "create", "--role", "brand"])
    assert result.exit_code != 0 and "brand_id" in result.output


def test_cli_keys_list_and_revoke(app, session):
    key = make_key(session, role="finance")
    key_id = accounts.authenticate(session, f"Bearer {key}").key_id
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["keys", "list"])
    assert listed.exit_code == 0 and key not in listed.output and "nk_finance_" in listed.output
    revoked = runner.invoke(args=["keys", "revoke", str(key_id)])
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(Unauthorized):
        accounts.authenticate(session, f"Bearer {key}")
    assert runner.invoke(args=["keys", "revoke", "999999"]).exit_code != 0
