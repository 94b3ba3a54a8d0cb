"""People in the web app: sign-up and review, invitations, sessions that end, cookies, headers."""

from __future__ import annotations

import datetime as dt

import pytest
from argon2 import PasswordHasher
from flask import Flask

from network.accounts import users
from network.accounts.models import User
from network.app import create_app
from network.auth import SYSTEM, Role
from network.clock import UTC
from network.errors import Conflict
from network.partners import service as partners
from network.portal.sessions import WebSessions
from tests.conftest import make_settings
from tests.factories import make_brand
from tests.portal.conftest import PASSWORD, csrf_token, make_user, post_form, sign_in

APPLICATION = {
    "name": "Deal Blog",
    "email": "Ops@DealBlog.example",
    "website": "https://dealblog.example",
    "traffic_sources": "SEO articles and a newsletter",
    "password": "a long password",
    "confirm": "a long password",
}


def test_a_partner_signs_up_is_approved_and_sees_its_home(app, client, session, outbox):
    make_user(session, email="admin@example.com")
    assert post_form(client, "/account/sign-up", APPLICATION).status_code == 200
    user = session.query(User).filter_by(email="ops@dealblog.example").one()
    assert user.role == "partner" and user.partner_id is not None
    # Pending: it may sign in and sees that its application is under review.
    assert sign_in(client, "ops@dealblog.example", "a long password").status_code == 302
    assert "under review" in client.get("/partner/").get_data(as_text=True)
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    page = admin.get("/admin/applications").get_data(as_text=True)
    assert "Deal Blog" in page and "SEO articles" in page
    (application,) = users.list_applications(session, SYSTEM)
    r = post_form(
        admin, f"/admin/applications/{application.id}", {"approve": "Approve"}, form_page="/admin/applications"
    )
    assert r.status_code == 302
    assert "No application is waiting" in admin.get("/admin/applications").get_data(as_text=True)
    assert "is active" in client.get("/partner/").get_data(as_text=True)
    assert "approved" in outbox.last_to("ops@dealblog.example").get_content()


def test_a_rejected_partner_cannot_sign_in(app, client, session):
    make_user(session, email="admin@example.com")
    post_form(client, "/account/sign-up", APPLICATION)
    assert sign_in(client, "ops@dealblog.example", "a long password").status_code == 302
    admin = app.test_client()
    sign_in(admin, "admin@example.com")
    (application,) = users.list_applications(session, SYSTEM)
    post_form(admin, f"/admin/applications/{application.id}", {"reject": "Reject"}, form_page="/admin/applications")
    assert client.get("/partner/").status_code == 302  # its session ended
    assert sign_in(client, "ops@dealblog.example", "a long password").status_code == 401
    assert partners.get_partner(session, SYSTEM, application.partner_id).status == "rejected"
    # The right password is told why; a wrong one gets the answer of any wrong password.
    assert "Your account is not active" in sign_in(client, "ops@dealblog.example", "a long password").get_data(True)
    wrong = sign_in(client, "ops@dealblog.example", "not the password").get_data(as_text=True)
    assert "Wrong e-mail or password." in wrong and "not active" not in wrong
    with pytest.raises(Conflict):
        users.decide_application(session, SYSTEM, application.id, approve=True)


def test_only_admins_see_applications(app, client, session):
    brand = make_brand(session)
    make_user(session, email="brand@example.com", role="brand", brand_id=brand.id)
    sign_in(client, "brand@example.com")
    assert client.get("/admin/applications").status_code == 404
    assert app.test_client().get("/admin/applications").status_code == 302


def test_an_invited_brand_user_sets_a_password_once_and_signs_in(app, client, session, outbox):
    brand = make_brand(session, name="Acme")
    make_user(session, email="admin@example.com")
    sign_in(client, "admin@example.com")
    form = {"email": "buyer@acme.example", "role": "brand", "brand_id": str(brand.id)}
    assert post_form(client, "/admin/invitations", form).status_code == 302
    path = outbox.link_to("buyer@acme.example").removeprefix("http://localhost")
    invitee = app.test_client()
    assert sign_in(invitee, "buyer@acme.example", "").status_code == 400  # no password yet
    r = post_form(invitee, path, {"password": "my own password", "confirm": "my own password"})
    assert r.status_code == 302
    assert invitee.get(path).status_code == 400  # used
    assert sign_in(invitee, "buyer@acme.example", "my own password").status_code == 302
    assert "Acme" in invitee.get("/brand/").get_data(as_text=True)
    # An address that has an account cannot be invited again; the admin is told why.
    r = post_form(client, "/admin/invitations", form)
    assert r.status_code == 400 and "already has an account" in r.get_data(as_text=True)


def test_a_password_change_ends_the_other_sessions_and_keeps_this_one(app, client, session):
    make_user(session, email="admin@example.com")
    other = app.test_client()
    sign_in(client, "admin@example.com")
    sign_in(other, "admin@example.com")
    form = {"current_password": PASSWORD, "new_password": "another password", "confirm": "another password"}
    assert post_form(client, "/account/profile", form).status_code == 302
    assert client.get("/admin/").status_code == 200
    assert other.get("/admin/").status_code == 302
    wrong = {**form, "current_password": "not it at all"}
    r = post_form(client, "/account/profile", wrong)
    assert r.status_code == 400 and "current password is not right" in r.get_data(as_text=True)


def test_sign_out_ends_the_session_even_for_a_copy_of_its_cookie(app, client, session):
    make_user(session, email="admin@example.com")
    sign_in(client, "admin@example.com")
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/admin/").status_code == 200
    assert post_form(client, "/account/sign-out", {}, form_page="/admin/").status_code == 302
    assert client.get("/admin/").status_code == 302
    assert copy.get("/admin/").status_code == 302


def test_a_session_ends_after_its_idle_and_absolute_lifetimes(client, session, frozen_clock):
    start = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    frozen_clock(start)
    make_user(session, email="admin@example.com")
    sign_in(client, "admin@example.com")
    frozen_clock(start + dt.timedelta(minutes=61))
    r = client.get("/admin/")
    assert r.status_code == 302 and "expired=1" in r.headers["Location"]
    sign_in(client, "admin@example.com")
    at = start + dt.timedelta(minutes=61)
    while at < start + dt.timedelta(hours=12, minutes=40):
        at += dt.timedelta(minutes=50)  # active: never idle for an hour
        frozen_clock(at)
        if client.get("/admin/").status_code != 200:
            break
    assert at - (start + dt.timedelta(minutes=61)) > dt.timedelta(hours=11)
    assert at - (start + dt.timedelta(minutes=61)) <= dt.timedelta(hours=12, minutes=50)


@pytest.mark.parametrize(("base", "secure"), [("http://localhost", False), ("https://net.example", True)])
def test_the_session_cookie_is_httponly_lax_and_secure_over_https(db, database_url, tmp_path, base, secure):
    app = create_app(make_settings(database_url, public_base_url=base, mail_outbox=str(tmp_path)), database=db)
    cookie = app.test_client().get("/account/sign-in").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure


def test_only_the_web_app_opens_a_cookie_session(app: Flask):
    interface = app.session_interface
    assert isinstance(interface, WebSessions)
    for path, opened in [("/c/abc", False), ("/api/v1/offers", False), ("/postback", False), ("/healthz", False)]:
        with app.test_request_context(path):
            from flask import request

            assert (interface.open_session(app, request) is not None) is opened
    for path in ("/", "/account/sign-in", "/admin/applications", "/partner/"):
        with app.test_request_context(path):
            from flask import request

            assert interface.open_session(app, request) is not None


def test_pages_carry_the_security_headers_and_clicks_do_not(client):
    r = client.get("/account/sign-in")
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert "<script" not in r.get_data(as_text=True) and "style=" not in r.get_data(as_text=True)
    click = client.get("/c/unknown")
    assert "Content-Security-Policy" not in click.headers and "Set-Cookie" not in click.headers


def test_sign_in_goes_back_to_a_local_page_only(client, session):
    make_user(session, email="admin@example.com")
    page = client.get("/account/sign-in?next=//evil.example/x")
    token = csrf_token(page.get_data(as_text=True))
    data = {"email": "admin@example.com", "password": PASSWORD, "csrf_token": token}
    r = client.post("/account/sign-in?next=//evil.example/x", data=data)
    assert r.headers["Location"] == "/"
    r = client.application.test_client().get("/admin/applications")
    assert r.status_code == 302 and "next=%2Fadmin%2Fapplications" in r.headers["Location"]


def test_emails_are_unique_whatever_their_case(client, session):
    make_user(session, email="Admin@Example.com")
    with pytest.raises(Conflict):
        users.create_user(session, SYSTEM, email="admin@EXAMPLE.com", role=Role.FINANCE)
    assert sign_in(client, "ADMIN@example.COM").status_code == 302


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(client, session):
    user = make_user(session, email="admin@example.com")
    user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    session.flush()
    old = user.password_hash
    assert sign_in(client, "admin@example.com").status_code == 302
    session.refresh(user)
    assert user.password_hash != old and not users.HASHER.check_needs_rehash(user.password_hash)
    assert users.sign_in(session, email="admin@example.com", password=PASSWORD) is not None


def test_account_settings_come_from_the_environment():
    from network.config import from_env

    settings = from_env(
        {
            "SECRET_KEY": "x",
            "MAIL_URL": "smtp://mail.example:587?starttls=1",
            "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
            "SESSION_IDLE_MINUTES": "15",
            "SESSION_ABSOLUTE_HOURS": "8",
            "RESET_LINK_MINUTES": "20",
        }
    )
    assert settings.mail_url == "smtp://mail.example:587?starttls=1"
    assert settings.ratelimit_storage_uri == "redis://127.0.0.1:6379"
    assert (settings.session_idle_minutes, settings.session_absolute_hours, settings.reset_link_minutes) == (15, 8, 20)
    with pytest.raises(ValueError, match="SESSION_IDLE_MINUTES"):
        from_env({"SECRET_KEY": "x", "SESSION_IDLE_MINUTES": "0"})


def test_a_bad_form_is_answered_400_naming_the_field(client, session):
    r = post_form(client, "/account/sign-up", {**APPLICATION, "password": "short", "confirm": "short"})
    page = r.get_data(as_text=True)
    assert r.status_code == 400
    assert 'aria-invalid="true"' in page and 'aria-describedby="password-hint password-error"' in page
    assert '<small id="password-error">Field must be between 10 and 256 characters long.</small>' in page
    assert session.query(User).count() == 0
