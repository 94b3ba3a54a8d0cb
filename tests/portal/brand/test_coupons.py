"""The brand's coupons page and the partner's: create, refuse with the API's message, delete; each sees its own."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from network.auth import Role
from network.customers.models import Coupon
from tests.portal.brand.conftest import page, rows, text, token_of
from tests.portal.conftest import make_user, sign_in


def post(client: Any, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={**data, "csrf_token": token_of(client, "/brand/coupons")})


def _create(world: Any, code: str, partner_id: int | None = None) -> Any:
    data = {"coupon_offer": str(world.offer.id), "coupon_partner": str(partner_id or world.partner.id), "code": code}
    return post(world.me, "/brand/coupons", data)


def test_a_brand_creates_lists_and_deletes_coupons_and_partners_see_their_own(world, session, app):
    assert _create(world, "SPRING10").status_code == 302
    table = rows(page(world.me, "/brand/coupons"))
    assert table[0][:3] == ["SPRING10", "Spring sale", f"Partner #{world.partner.id}"]
    assert "No coupon yet." in page(world.them, "/brand/coupons")  # another brand sees none

    r = _create(world, "spring10")
    assert r.status_code == 422 and "already has the coupon code" in text(r)
    r = _create(world, "10 % off")
    assert r.status_code == 422 and "letters, digits" in text(r)

    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=world.partner.id)
    make_user(session, email="ops@coupons.example", role=Role.PARTNER, partner_id=world.other_partner.id)
    mine, theirs = app.test_client(), app.test_client()
    assert sign_in(mine, "ops@dealblog.example").status_code == 302
    assert sign_in(theirs, "ops@coupons.example").status_code == 302
    assert rows(page(mine, "/partner/coupons"))[0][:2] == ["SPRING10", "Spring sale"]
    assert "No coupon code yet." in page(theirs, "/partner/coupons")

    coupon = session.scalars(select(Coupon)).one()
    assert post(world.them, f"/brand/coupons/{coupon.id}/delete", {}).status_code == 404
    assert post(world.me, f"/brand/coupons/{coupon.id}/delete", {}).status_code == 302
    assert session.scalars(select(Coupon)).all() == []
