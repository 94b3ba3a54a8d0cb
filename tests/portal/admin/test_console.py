"""The admin console: partners and their sign-ups, API keys shown once and revoked after confirming, brands
with their users and invitations, and what is stuck; every change through the same services as the API."""

from __future__ import annotations

import re

import pytest

from network.accounts import service as accounts
from network.auth import SYSTEM
from network.errors import Unauthorized
from network.partners import service as partners
from tests.portal.admin.conftest import text
from tests.portal.conftest import post_form, sign_in


def test_home_counts_what_waits(world):
    html = text(world.admin.get("/admin/"))
    for words in ("1 partner sign-up to decide", "1 dead-lettered row", "1 dead postback delivery",
                  "1 scheduled job failing", "settle_payouts"):  # fmt: skip
        assert words in html, words


def test_partners_list_shows_the_sign_up_and_approving_activates_it(world, session):
    html = text(world.admin.get("/admin/partners"))
    assert "Fresh Blog" in html and "SEO and a newsletter" in html and "Deal Blog" in html
    r = post_form(world.admin, f"/admin/applications/{world.application_id}", {"approve": "Approve"},
                  form_page="/admin/partners")  # fmt: skip
    assert r.status_code == 302
    session.expire_all()
    assert partners.get_partner(session, SYSTEM, world.applicant.id).status == "active"
    assert "No application is waiting" in text(world.admin.get("/admin/partners"))


def test_a_pending_partners_page_decides_its_sign_up(world, session):
    path = f"/admin/partners/{world.applicant.id}"
    html = text(world.admin.get(path))
    assert "SEO and a newsletter" in html and "hello@fresh.example" in html and "Change the status" not in html
    r = post_form(world.admin, f"/admin/applications/{world.application_id}", {"reject": "Reject"}, form_page=path)
    assert r.status_code == 302
    session.expire_all()
    assert partners.get_partner(session, SYSTEM, world.applicant.id).status == "rejected"
    assert "Its sign-up" not in text(world.admin.get(path))


def test_partners_filter_by_status(world):
    html = text(world.admin.get("/admin/partners", query_string={"status": "pending"}))
    table = html.split("All partners")[1]
    assert "Fresh Blog" in table and "Deal Blog" not in table


def test_a_partner_page_shows_its_users_and_keys_and_suspends_it(world, app, session):
    html = text(world.admin.get(f"/admin/partners/{world.partner.id}"))
    assert "ops@dealblog.example" in html and world.partner_key.prefix in html
    assert world.partner_secret not in html
    path = f"/admin/partners/{world.partner.id}"
    assert post_form(world.admin, f"{path}/status", {"status": "suspended"}, form_page=path).status_code == 302
    session.expire_all()
    assert partners.get_partner(session, SYSTEM, world.partner.id).status == "suspended"
    assert sign_in(app.test_client(), "ops@dealblog.example").status_code == 401
    assert post_form(world.admin, f"{path}/status", {"status": "active"}, form_page=path).status_code == 302
    assert sign_in(app.test_client(), "ops@dealblog.example").status_code == 302


def test_a_new_key_is_shown_once_and_works(world, session):
    r = post_form(world.admin, "/admin/keys", {"role": "brand", "brand_id": str(world.brand.id), "label": "ERP"})
    assert r.status_code == 200
    key = re.search(r'id="new-key" readonly value="([^"]+)"', text(r)).group(1)
    assert accounts.authenticate(session, f"Bearer {key}").brand_id == world.brand.id
    listing = text(world.admin.get("/admin/keys"))
    assert "ERP" in listing and key not in listing
    assert r.headers["Cache-Control"] == "no-store"


def test_a_key_with_the_wrong_binding_is_refused_beside_its_field(world):
    r = post_form(world.admin, "/admin/keys", {"role": "partner", "label": "no partner"})
    assert r.status_code == 422
    assert "a partner key needs partner_id" in text(r) and 'aria-invalid="true"' in text(r)


def test_keys_filter_by_brand_and_state(world):
    html = text(world.admin.get("/admin/keys", query_string={"brand_id": world.brand.id}))
    assert "Acme server" in html and world.partner_key.prefix not in html.split("<caption>API keys")[1]
    assert "No key." in text(world.admin.get("/admin/keys", query_string={"state": "revoked"}))


def test_revoking_asks_first_then_the_key_is_refused(world, session):
    path = f"/admin/keys/{world.partner_key.id}/revoke"
    confirm = text(world.admin.get(path))
    assert "Yes, revoke it" in confirm
    session.expire_all()
    assert accounts.get_key(session, SYSTEM, world.partner_key.id).revoked_at is None  # asking changes nothing
    assert post_form(world.admin, path, {}).status_code == 302
    session.expire_all()
    with pytest.raises(Unauthorized):
        accounts.authenticate(session, f"Bearer {world.partner_secret}")
    assert "revoked" in text(world.admin.get("/admin/keys", query_string={"state": "revoked"}))


def test_create_a_brand_then_invite_its_first_user(world, session, outbox):
    r = post_form(world.admin, "/admin/brands", {"name": "Bolt Bikes", "currency": "eur"})
    assert r.status_code == 302
    brand_page = r.headers["Location"]
    html = text(world.admin.get(brand_page))
    assert "Bolt Bikes" in html and "EUR" in html and "No user." in html
    brand_id = int(brand_page.rstrip("/").rsplit("/", 1)[1])
    invite = text(world.admin.get("/admin/invitations", query_string={"brand_id": brand_id}))
    assert f'<option selected value="{brand_id}">' in invite or f'value="{brand_id}" selected' in invite
    form = {"email": "boss@bolt.example", "role": "brand", "brand_id": str(brand_id)}
    assert post_form(world.admin, "/admin/invitations", form).status_code == 302
    assert "boss@bolt.example" in text(world.admin.get(brand_page))


def test_a_brand_with_a_bad_currency_is_refused_beside_its_field(world):
    r = post_form(world.admin, "/admin/brands", {"name": "Bad", "currency": "XYZ"})
    assert r.status_code == 422 and 'aria-invalid="true"' in text(r)


def test_a_brand_page_shows_its_users_and_keys(world):
    html = text(world.admin.get(f"/admin/brands/{world.brand.id}"))
    assert "team@acme.example" in html and "Acme server" in html


def test_stuck_shows_letters_deliveries_and_jobs(world):
    html = text(world.admin.get("/admin/stuck"))
    assert "Service Unavailable" in html and "gateway timed out" in html and "mature_holds" in html
    letters = text(world.admin.get("/admin/dead-letters", query_string={"source": "clicks"}))
    assert "value too long" in letters


def test_a_dead_delivery_is_sent_again(world, session):
    r = post_form(world.admin, f"/admin/deliveries/{world.delivery.id}/retry", {}, form_page="/admin/deliveries")
    assert r.status_code == 302
    session.expire_all()
    assert session.get(type(world.delivery), world.delivery.id).status == "pending"
    again = post_form(world.admin, f"/admin/deliveries/{world.delivery.id}/retry", {}, form_page="/admin/deliveries")
    assert again.status_code == 409


def test_a_form_without_its_csrf_token_is_refused(world, session):
    r = world.admin.post(f"/admin/keys/{world.partner_key.id}/revoke", data={})
    assert r.status_code == 400
    session.expire_all()
    assert accounts.get_key(session, SYSTEM, world.partner_key.id).revoked_at is None


def test_a_partner_created_by_hand_is_active_and_shown(world, session):
    r = post_form(world.admin, "/admin/partners", {"name": "Coupon Hub", "email": "team@couponhub.example"},
                  form_page="/admin/partners")  # fmt: skip
    assert r.status_code == 302
    created = [p for p in partners.list_partners(session, SYSTEM, limit=100) if p.name == "Coupon Hub"]
    assert len(created) == 1 and created[0].status == "active" and created[0].email == "team@couponhub.example"
    assert r.headers["Location"].endswith(f"/admin/partners/{created[0].id}")
    assert "Coupon Hub" in text(world.admin.get(r.headers["Location"]))


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"name": "", "email": ""}, "name", "give the partner&#39;s name"),
        ({"name": "Coupon Hub", "email": "not-an-email"}, "email", "Not a valid email address."),
        ({"name": "Coupon\x00Hub", "email": ""}, "name", ""),
    ],
)
def test_a_partner_refused_says_why_beside_the_field_and_creates_nothing(world, session, form, field, words):
    before = len(partners.list_partners(session, SYSTEM, limit=100))
    r = post_form(world.admin, "/admin/partners", form, form_page="/admin/partners")
    assert r.status_code == 422
    error = re.search(rf'<small id="{field}-error">([^<]*)</small>', r.get_data(as_text=True))
    assert error is not None and words in error.group(1)
    assert len(partners.list_partners(session, SYSTEM, limit=100)) == before
