"""In a real chromium: a partner signs up, an admin approves it, the partner signs in and sees its home;
every page of the account area passes the accessibility check."""

from __future__ import annotations

import re

import pytest

from network.accounts import users
from network.auth import SYSTEM
from tests.browser.conftest import check_page, sign_in, sign_up

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "admin@example.com", "admin password 1"
PARTNER, PARTNER_PASSWORD = "ops@dealblog.example", "partner password 1"
TRAFFIC = "SEO articles and a weekly newsletter"


def _admin(live_app) -> None:  # type: ignore[no-untyped-def]
    with live_app.extensions["network.db"].session_scope() as session:
        users.create_user(session, SYSTEM, email=ADMIN, role="admin", password=ADMIN_PASSWORD)


def test_a_partner_signs_up_is_approved_by_an_admin_and_sees_its_home(live_app, new_page):
    from playwright.sync_api import expect

    _admin(live_app)
    base = live_app.url
    partner = new_page()
    partner.goto(f"{base}/account/sign-up")
    check_page(partner, "sign-up")
    sign_up(partner, base, name="Deal Blog", email=PARTNER, password=PARTNER_PASSWORD, traffic_sources=TRAFFIC)
    expect(partner.get_by_role("heading", name="Application received")).to_be_visible()
    check_page(partner, "application-received")

    admin = new_page()
    sign_in(admin, base, ADMIN, ADMIN_PASSWORD)
    expect(admin.get_by_role("heading", name="Admin")).to_be_visible()
    check_page(admin, "admin-home")
    admin.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
    expect(admin.get_by_role("cell", name="SEO articles and a weekly newsletter")).to_be_visible()
    check_page(admin, "admin-applications")
    admin.get_by_role("button", name="Approve Deal Blog").click()
    expect(admin.get_by_role("status")).to_contain_text("Deal Blog: approved.")
    expect(admin.get_by_text("No application is waiting.")).to_be_visible()

    sign_in(partner, base, PARTNER, PARTNER_PASSWORD)
    expect(partner.get_by_role("heading", name="Deal Blog")).to_be_visible()
    expect(partner.get_by_text("Your partner account is active.")).to_be_visible()
    expect(partner.get_by_text(f"Signed in as {PARTNER} (partner).")).to_be_visible()
    check_page(partner, "partner-home")


def test_every_account_page_reads_well_and_works_without_javascript(live_app, browser):
    from playwright.sync_api import expect

    _admin(live_app)
    base = live_app.url
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, base, ADMIN, ADMIN_PASSWORD)
        expect(page.get_by_role("heading", name="Admin")).to_be_visible()
        page.get_by_role("link", name="Profile").click()
        expect(page.get_by_role("heading", name="Profile")).to_be_visible()
        page.get_by_role("button", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_role("status")).to_contain_text("You are signed out.")
    finally:
        context.close()
    page = browser.new_page()
    try:
        for path, name in [
            ("/account/sign-in", "sign-in"),
            ("/account/reset", "reset-request"),
        ]:
            page.goto(base + path)
            check_page(page, name)
        sign_in(page, base, ADMIN, ADMIN_PASSWORD)
        for path, name in [("/admin/invitations", "admin-invitations"), ("/account/profile", "profile")]:
            page.goto(base + path)
            assert re.search(r"\S", page.title())
            check_page(page, name)
    finally:
        page.close()
