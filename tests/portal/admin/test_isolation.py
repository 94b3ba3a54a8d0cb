"""Brand, partner and finance users get 404 on every admin page and form, as for a path that does not exist,
and nothing changes; visitors are sent to sign in."""

from __future__ import annotations

import pytest

from network.accounts import service as accounts
from network.auth import SYSTEM, Role
from tests.portal.conftest import csrf_token, make_user, sign_in

PAGES = ("/admin/", "/admin/partners", "/admin/brands", "/admin/keys", "/admin/invitations", "/admin/applications",
         "/admin/stuck", "/admin/dead-letters", "/admin/deliveries")  # fmt: skip


def _paths(w):
    return (*PAGES, f"/admin/partners/{w.partner.id}", f"/admin/brands/{w.brand.id}",
            f"/admin/keys/{w.partner_key.id}/revoke")  # fmt: skip


def _posts(w):
    return [
        (f"/admin/applications/{w.application_id}", {"approve": "Approve"}),
        (f"/admin/partners/{w.partner.id}/status", {"status": "suspended"}),
        (f"/admin/keys/{w.partner_key.id}/revoke", {}),
        ("/admin/keys", {"role": "admin"}),
        ("/admin/brands", {"name": "Mine", "currency": "EUR"}),
        ("/admin/invitations", {"email": "x@example.com", "role": "admin"}),
        (f"/admin/deliveries/{w.delivery.id}/retry", {}),
    ]


@pytest.mark.parametrize("role", [Role.BRAND, Role.PARTNER, Role.FINANCE])
def test_other_roles_get_404_everywhere_and_change_nothing(app, world, session, role):
    ids = {"brand_id": world.brand.id} if role is Role.BRAND else {}
    ids |= {"partner_id": world.partner.id} if role is Role.PARTNER else {}
    make_user(session, email="someone@example.com", role=role, **ids)
    session.flush()
    client = app.test_client()
    assert sign_in(client, "someone@example.com").status_code == 302
    for path in _paths(world):
        r = client.get(path)
        assert r.status_code == 404, (role, path, r.status_code)
        html = r.get_data(as_text=True)
        for secret in ("Fresh Blog", "Acme server", world.partner_key.prefix, "Service Unavailable", "/admin/"):
            assert secret not in html, (role, path, secret)
    token = csrf_token(client.get("/account/profile").get_data(as_text=True))
    for path, form in _posts(world):
        assert client.post(path, data={**form, "csrf_token": token}).status_code == 404, (role, path)
    session.expire_all()
    assert accounts.get_key(session, SYSTEM, world.partner_key.id).revoked_at is None
    assert world.partner.status == "active" and world.applicant.status == "pending"
    assert [b.name for b in accounts.list_brands(session, SYSTEM)] == ["Acme Shop"]


def test_signed_out_visitors_are_sent_to_sign_in(app, world):
    client = app.test_client()
    for path in _paths(world):
        r = client.get(path)
        assert r.status_code == 302 and "/account/sign-in" in r.headers["Location"], path


def test_every_admin_page_sends_the_security_headers(world):
    for path in _paths(world):
        r = world.admin.get(path)
        assert r.status_code == 200, path
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY" and r.headers["Cache-Control"] == "no-store"
