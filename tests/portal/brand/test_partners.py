"""The brand's partners page: applications to approve or reject, invitations, per-partner payouts, all through
the offers service, each refusal the API's message beside its field."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from network.offers.models import OfferAccess, PartnerOverride
from tests.portal.brand.conftest import override, page, rows, text, token_of


def post(client: Any, path: str, data: dict[str, Any]) -> Any:
    return client.post(path, data={**data, "csrf_token": token_of(client, "/brand/partners")})


def test_applications_are_listed_per_offer(world):
    table = rows(page(world.me, "/brand/partners"))
    row = next(r for r in table if r[0] == f"Partner #{world.partner.id}")
    assert row[1:4] == ["application", "pending", "Newsletter of 40k"]
    assert not any("Coupons galore" in c for r in table for c in r)


def test_approve_and_reject_an_application(world, session):
    path = f"/brand/offers/{world.gated.id}/applications/{world.application.id}"
    r = post(world.me, path, {"approve": "Approve"})
    assert r.status_code == 302
    session.refresh(world.application)
    assert world.application.status == "approved" and world.application.decided_by
    assert f"Partner #{world.partner.id}: approved." in page(world.me, "/brand/partners")
    assert post(world.me, path, {"reject": "Reject"}).status_code == 302
    session.refresh(world.application)
    assert world.application.status == "rejected"


def test_invite_a_partner(world, session):
    r = post(
        world.me,
        "/brand/partners/invite",
        {"invite_offer": str(world.gated.id), "invite_partner": str(world.other_partner.id)},
    )
    assert r.status_code == 302, text(r)
    access = session.scalars(
        select(OfferAccess).where(
            OfferAccess.partner_id == world.other_partner.id, OfferAccess.offer_id == world.gated.id
        )
    ).one()
    assert (access.kind, access.status) == ("invitation", "approved")
    r = post(world.me, "/brand/partners/invite", {"invite_offer": str(world.gated.id), "invite_partner": "999999"})
    assert r.status_code == 422 and "unknown partner" in text(r)
    # Another brand's offer is not found, as through the API.
    r = post(
        world.me,
        "/brand/partners/invite",
        {"invite_offer": str(world.foreign.id), "invite_partner": str(world.partner.id)},
    )
    assert r.status_code == 404
    assert session.scalars(select(OfferAccess).where(OfferAccess.offer_id == world.foreign.id)).all() == [
        world.foreign_application
    ]


def test_set_and_remove_a_partners_payout(world, session):
    target = f"{world.offer.id}:sale"
    r = post(
        world.me,
        "/brand/partners/overrides",
        {"target": target, "override_partner": str(world.partner.id), "payout": "6.50"},
    )
    assert r.status_code == 302, text(r)
    (made,) = session.scalars(select(PartnerOverride)).all()
    assert (made.partner_id, made.payout_minor) == (world.partner.id, 650)
    assert ["Spring sale", "sale", f"Partner #{world.partner.id}", "6.50 USD", ""] in rows(
        page(world.me, "/brand/partners")
    )
    # More than the brand pays: the API's loss-leader refusal, beside the field.
    r = post(
        world.me,
        "/brand/partners/overrides",
        {"target": target, "override_partner": str(world.partner.id), "payout": "9.00"},
    )
    assert r.status_code == 422 and "only an admin may allow a loss leader" in text(r)
    r = post(world.me, f"/brand/offers/{world.offer.id}/overrides/{made.id}/remove", {})
    assert r.status_code == 302
    assert session.scalars(select(PartnerOverride)).all() == []


def test_another_brands_override_is_never_listed(world, session):
    override(session, world.foreign, world.other_partner, "80.00")
    session.flush()
    html = page(world.me, "/brand/partners")
    assert "80.00" not in html and "No per-partner payout." in html
