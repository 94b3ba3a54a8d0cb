"""Partner access (SPEC §3): public offers need nothing; approval offers take an application the
brand or admin approves or rejects; private offers only reach partners the brand invites."""

from __future__ import annotations

import pytest

from tests.factories import Api, make_brand, make_key, make_offer, make_partner


@pytest.fixture
def ctx(client, session):
    brand = make_brand(session)
    partner = make_partner(session)
    other = make_partner(session, name="Other")
    session.flush()
    return {
        "brand": brand,
        "partner": partner,
        "other": other,
        "as_brand": Api(client, make_key(session, role="brand", brand=brand)),
        "as_partner": Api(client, make_key(session, role="partner", partner=partner)),
        "as_other": Api(client, make_key(session, role="partner", partner=other)),
        "admin": Api(client, make_key(session, role="admin")),
    }


def _can_run(api: Api, offer_id: int) -> bool | None:
    r = api.get(f"/api/v1/offers/{offer_id}")
    return r.json["can_run"] if r.status_code == 200 else None


def test_a_public_offer_needs_no_application(ctx, session):
    offer = make_offer(session, brand=ctx["brand"])
    assert _can_run(ctx["as_partner"], offer.id) is True
    r = ctx["as_partner"].post(f"/api/v1/offers/{offer.id}/applications", json={})
    assert r.status_code == 409 and r.json["code"] == "no_application_needed"


def test_an_application_is_pending_until_the_brand_approves_it(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="approval")
    partner = ctx["as_partner"]
    assert _can_run(partner, offer.id) is False
    r = partner.post(f"/api/v1/offers/{offer.id}/applications", json={"note": "I run a deals blog"})
    assert r.status_code == 201, r.json
    assert (r.json["status"], r.json["kind"], r.json["note"]) == ("pending", "application", "I run a deals blog")
    access_id = r.json["id"]
    # Applying again answers the same application.
    assert partner.post(f"/api/v1/offers/{offer.id}/applications", json={}).json["id"] == access_id
    pending = ctx["as_brand"].get(f"/api/v1/offers/{offer.id}/applications?status=pending").json["items"]
    assert [a["id"] for a in pending] == [access_id]
    r = ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/applications/{access_id}/approve")
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["decided_at"]
    assert _can_run(partner, offer.id) is True
    # Another partner is unaffected.
    assert _can_run(ctx["as_other"], offer.id) is False


def test_a_rejected_partner_cannot_run_the_offer_or_reapply(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="approval")
    access_id = ctx["as_partner"].post(f"/api/v1/offers/{offer.id}/applications", json={}).json["id"]
    r = ctx["admin"].post(f"/api/v1/offers/{offer.id}/applications/{access_id}/reject")
    assert r.status_code == 200 and r.json["status"] == "rejected"
    assert _can_run(ctx["as_partner"], offer.id) is False
    r = ctx["as_partner"].post(f"/api/v1/offers/{offer.id}/applications", json={})
    assert r.status_code == 409 and r.json["code"] == "application_rejected"


def test_an_approval_can_be_withdrawn_by_rejecting_it(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="approval")
    access_id = ctx["as_partner"].post(f"/api/v1/offers/{offer.id}/applications", json={}).json["id"]
    ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/applications/{access_id}/approve")
    assert _can_run(ctx["as_partner"], offer.id) is True
    ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/applications/{access_id}/reject")
    assert _can_run(ctx["as_partner"], offer.id) is False


def test_deciding_an_unknown_application_is_404(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="approval")
    assert ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/applications/999999/approve").status_code == 404


def test_a_private_offer_is_invisible_until_the_brand_invites(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="private")
    partner = ctx["as_partner"]
    assert partner.get(f"/api/v1/offers/{offer.id}").status_code == 404
    assert offer.id not in [o["id"] for o in partner.get("/api/v1/offers").json["items"]]
    assert partner.post(f"/api/v1/offers/{offer.id}/applications", json={}).status_code == 404
    r = ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/invitations", json={"partner_id": ctx["partner"].id})
    assert r.status_code == 201 and (r.json["kind"], r.json["status"]) == ("invitation", "approved")
    assert _can_run(partner, offer.id) is True
    assert offer.id in [o["id"] for o in partner.get("/api/v1/offers").json["items"]]
    assert ctx["as_other"].get(f"/api/v1/offers/{offer.id}").status_code == 404


def test_inviting_an_unknown_partner_is_refused(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="private")
    r = ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/invitations", json={"partner_id": 999_999})
    assert r.status_code == 400 and "partner_id" in r.json["errors"]


def test_an_invitation_overrides_an_earlier_rejection(ctx, session):
    offer = make_offer(session, brand=ctx["brand"], visibility="approval")
    access_id = ctx["as_partner"].post(f"/api/v1/offers/{offer.id}/applications", json={}).json["id"]
    ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/applications/{access_id}/reject")
    r = ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/invitations", json={"partner_id": ctx["partner"].id})
    assert r.status_code == 201 and r.json["id"] == access_id and r.json["status"] == "approved"
    assert _can_run(ctx["as_partner"], offer.id) is True


@pytest.mark.parametrize("status", ["paused", "draft", "archived"])
def test_no_partner_may_run_an_offer_that_is_not_active(ctx, session, status):
    offer = make_offer(session, brand=ctx["brand"], status=status, visibility="private")
    ctx["as_brand"].post(f"/api/v1/offers/{offer.id}/invitations", json={"partner_id": ctx["partner"].id})
    assert _can_run(ctx["as_partner"], offer.id) is False


def test_a_suspended_partner_may_run_nothing(ctx, session):
    offer = make_offer(session, brand=ctx["brand"])
    ctx["admin"].post(f"/api/v1/partners/{ctx['partner'].id}/status", json={"status": "suspended"})
    assert _can_run(ctx["as_partner"], offer.id) is False
    listed = ctx["as_partner"].get("/api/v1/offers").json["items"]
    assert [o["can_run"] for o in listed] == [False]
