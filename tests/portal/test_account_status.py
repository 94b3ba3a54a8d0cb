"""Who may sign in: a rejected or suspended partner's users may not, and only the password's owner is told why."""

from __future__ import annotations

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from network.partners import service as partners
from tests.factories import make_partner
from tests.portal.conftest import PASSWORD, make_user, post_form, sign_in

WRONG = "not the password at all"
NOT_ACTIVE = "Your account is not active"
WRONG_CREDENTIALS = "Wrong e-mail or password."


def _page(response) -> str:
    return response.get_data(as_text=True)


def test_rejecting_a_sign_up_marks_the_partner_rejected_and_ends_its_sessions(app, client, session, outbox):
    make_user(session, email="admin@example.com")
    application = {"name": "Deal Blog", "email": "ops@dealblog.example", "website": "https://dealblog.example"}
    application |= {"traffic_sources": "SEO", "password": "a long password", "confirm": "a long password"}
    post_form(client, "/account/sign-up", application)
    assert sign_in(client, "ops@dealblog.example", "a long password").status_code == 302
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    (pending,) = users.list_applications(session, SYSTEM)
    post_form(admin, f"/admin/applications/{pending.id}", {"reject": "Reject"}, form_page="/admin/applications")
    (rejected,) = users.list_applications(session, SYSTEM, status="rejected")
    assert partners.get_partner(session, SYSTEM, rejected.partner_id).status == "rejected"
    assert client.get("/partner/").status_code == 302
    # The right password: told plainly; a wrong one: the answer any wrong password gets.
    r = sign_in(client, "ops@dealblog.example", "a long password")
    assert r.status_code == 401 and NOT_ACTIVE in _page(r)
    r = sign_in(client, "ops@dealblog.example", WRONG)
    assert r.status_code == 401 and WRONG_CREDENTIALS in _page(r) and NOT_ACTIVE not in _page(r)


@pytest.mark.parametrize("status", ["suspended", "rejected"])
def test_a_shut_out_partners_user_is_told_only_after_the_right_password(client, session, status):
    partner = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=partner.id)
    assert sign_in(client, "ops@dealblog.example").status_code == 302
    partners.set_status(session, SYSTEM, partner.id, status)
    session.flush()
    assert client.get("/partner/").status_code == 302  # a session already open ends at its next request
    wrong, unknown = sign_in(client, "ops@dealblog.example", WRONG), sign_in(client, "nobody@example.com", WRONG)
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    assert NOT_ACTIVE not in _page(wrong) and WRONG_CREDENTIALS in _page(wrong) and WRONG_CREDENTIALS in _page(unknown)
    right = sign_in(client, "ops@dealblog.example", PASSWORD)
    assert right.status_code == 401 and NOT_ACTIVE in _page(right)
    partners.set_status(session, SYSTEM, partner.id, "active")
    session.flush()
    assert sign_in(client, "ops@dealblog.example").status_code == 302


def test_a_pending_partner_signs_in_to_follow_its_review(client, session):
    partner = make_partner(session, name="Fresh Blog", email="fresh@example.com", status="pending")
    make_user(session, email="fresh@example.com", role=Role.PARTNER, partner_id=partner.id)
    assert sign_in(client, "fresh@example.com").status_code == 302
    assert "under review" in _page(client.get("/partner/"))


def test_a_shut_out_partners_user_gets_no_reset_link_and_the_usual_answer(client, session, outbox):
    partner = make_partner(session, name="Deal Blog", email="ops@dealblog.example", status="suspended")
    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=partner.id)
    r = post_form(client, "/account/reset", {"email": "ops@dealblog.example"})
    assert r.status_code == 200 and "If this address has an account" in _page(r)
    assert outbox.all() == []
