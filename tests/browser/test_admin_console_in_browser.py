"""In a real chromium, an admin's main job in its console (issue #22): it signs in to see what waits,
approves a partner's sign-up (the partner may then sign in), issues a key that is shown once, revokes a
partner's key after confirming (the API refuses it at once), and looks at what is stuck. Each page passes
the accessibility check and is screenshotted."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from tests.browser.conftest import check_page, sign_in
from tests.factories import make_brand, make_key, make_partner

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "ops@network.example", "admin password 1"
APPLICANT, APPLICANT_PASSWORD = "hello@fresh.example", "partner password 1"


def _status(base: str, path: str, key: str) -> int:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
        return conn.getresponse().status
    finally:
        conn.close()


def _world(live_app: Any) -> dict[str, Any]:
    """An admin, a brand, a partner with an API key, and a sign-up waiting for its decision."""
    with live_app.extensions["network.db"].session_scope() as session:
        users.create_user(session, SYSTEM, email=ADMIN, role="admin", password=ADMIN_PASSWORD)
        make_brand(session, name="Acme Shop")
        partner = make_partner(session, name="Deal Blog")
        key = make_key(session, role=Role.PARTNER, partner=partner)
        users.sign_up_partner(
            session, name="Fresh Blog", email=APPLICANT, password=APPLICANT_PASSWORD,
            website="https://fresh.example", traffic_sources="SEO",
        )  # fmt: skip
        return {"partner_id": partner.id, "key": key}


def test_an_admin_approves_a_sign_up_and_revokes_a_key_in_the_browser(live_app, new_page):
    from playwright.sync_api import expect

    base = live_app.url
    world = _world(live_app)
    page = new_page()
    sign_in(page, base, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(f"{base}/admin/")
    expect(page.get_by_text("1 partner sign-up to decide")).to_be_visible()
    check_page(page, "admin-1-home")

    # Approve the sign-up: the partner may sign in and is active.
    page.get_by_role("link", name="Partners", exact=True).first.click()
    check_page(page, "admin-2-partners")
    page.get_by_role("button", name="Approve Fresh Blog").click()
    expect(page.get_by_text("Fresh Blog: approved.")).to_be_visible()
    expect(page.get_by_text("No application is waiting.")).to_be_visible()
    partner_page = new_page()
    sign_in(partner_page, base, APPLICANT, APPLICANT_PASSWORD)
    partner_page.wait_for_url(f"{base}/partner/")

    # Issue a key for the brand: it is shown once.
    page.get_by_role("link", name="API keys").first.click()
    issue = page.get_by_role("region", name="Issue a key")
    issue.get_by_label("Role").select_option("brand")
    issue.get_by_label("Brand (for a brand key)").select_option(label="Acme Shop")
    issue.get_by_label("Label").fill("Acme server")
    issue.get_by_role("button", name="Issue the key").click()
    new_key = page.get_by_label("Brand key").input_value()
    assert new_key.startswith("nk_brand_")
    check_page(page, "admin-3-key-issued")
    assert _status(base, "/api/v1/offers", new_key) == 200

    # Revoke the partner's key after confirming: the API refuses it at once.
    assert _status(base, f"/api/v1/partners/{world['partner_id']}", world["key"]) == 200
    page.goto(f"{base}/admin/partners/{world['partner_id']}")
    check_page(page, "admin-4-partner")
    page.get_by_role("link", name="Revoke key").click()
    check_page(page, "admin-5-confirm-revoke")
    page.get_by_role("button", name="Yes, revoke it").click()
    expect(page.get_by_text("is revoked.")).to_be_visible()
    assert _status(base, f"/api/v1/partners/{world['partner_id']}", world["key"]) == 401

    page.get_by_role("link", name="Stuck").click()
    expect(page.get_by_role("heading", name="Scheduled jobs")).to_be_visible()
    check_page(page, "admin-6-stuck")


def test_every_admin_page_passes_the_accessibility_check(live_app, new_page):
    from playwright.sync_api import expect

    _world(live_app)
    base = live_app.url
    page = new_page()
    sign_in(page, base, ADMIN, ADMIN_PASSWORD)
    page.wait_for_url(f"{base}/admin/")
    for path, name in [
        ("/admin/brands", "brands"), ("/admin/brands/1", "brand"), ("/admin/keys", "keys"),
        ("/admin/invitations?brand_id=1", "invite"), ("/admin/dead-letters", "dead-letters"),
        ("/admin/deliveries", "deliveries"),
    ]:  # fmt: skip
        page.goto(base + path)
        check_page(page, f"admin-page-{name}")
    page.goto(f"{base}/admin/brands")
    page.get_by_role("button", name="Create the brand").click()  # empty: refused beside its field
    expect(page.get_by_text("give the brand's name")).to_be_visible()
    check_page(page, "admin-page-brand-refused")
