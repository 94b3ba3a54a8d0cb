"""The brand's customers page: its bound customers, moved to another partner or unbound, audited; never another brand's."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from network.customers.models import Customer
from network.payouts.models import AuditLog
from network.tracking.models import Link
from tests.portal.brand.conftest import page, rows, text, token_of


def post(client: Any, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={**data, "csrf_token": token_of(client, "/brand/customers")})


def test_a_brand_moves_and_unbinds_its_customers(world, session):
    link = session.scalars(select(Link).where(Link.offer_id == world.offer.id)).first()
    customer = Customer(brand_id=world.brand.id, customer_id="cus_42", partner_id=world.partner.id, link_id=link.id,
                        offer_id=world.offer.id)  # fmt: skip
    session.add(customer)
    session.flush()
    assert rows(page(world.me, "/brand/customers"))[0][:3] == ["cus_42", f"#{world.offer.id}",
                                                             f"Partner #{world.partner.id}"]  # fmt: skip
    assert "No bound customer yet." in page(world.them, "/brand/customers")
    path = f"/brand/customers/{customer.id}"
    assert post(world.them, f"{path}/move", {"move_partner": str(world.other_partner.id)}).status_code == 404
    r = post(world.me, f"{path}/move", {"move_partner": "999999"})
    assert r.status_code == 422 and "unknown partner" in text(r)
    assert post(world.me, f"{path}/move", {"move_partner": str(world.other_partner.id)}).status_code == 302
    session.refresh(customer)
    assert customer.partner_id == world.other_partner.id
    assert post(world.them, f"{path}/unbind", {}).status_code == 404
    assert post(world.me, f"{path}/unbind", {}).status_code == 302
    assert session.scalars(select(Customer)).all() == []
    actions = session.scalars(select(AuditLog.action).where(AuditLog.object_type == "customer")).all()
    assert actions == ["customer.moved", "customer.unbound"]
