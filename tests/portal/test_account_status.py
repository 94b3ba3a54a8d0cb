"""Who may sign in: a rejected or suspended partner's users may not, and only the password's owner is told why."""

from __future__ import annotations

import pytest

from network.auth import SYSTEM, Role
from network.partners import service as partners
from tests.factories import make_partner
from tests.portal.conftest import PASSWORD, make_user, post_form, sign_in

WRONG = "not the password at all"
NOT_ACTIVE = "Your account is not active"
WRONG_CREDENTIALS = "Wrong e-mail or password."


def _page(response) -> str:
    return response.get_data(as_text=True)


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
