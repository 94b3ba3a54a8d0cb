"""In a real chromium: finance builds the brands' invoices, issues one behind its confirmation, marks it paid
with a reference, and reads the margin; the brand sees its invoice and balances on its Billing page; every
page passes the accessibility check, with no script refused by the CSP."""

from __future__ import annotations

import datetime as dt

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from network.clock import now_utc
from tests.browser.conftest import check_page, sign_in
from tests.factories import make_partner
from tests.payouts.support import make_commission, make_shop

pytestmark = pytest.mark.browser

FINANCE, BRAND, PASSWORD = "money@example.com", "shop@example.com", "billing password 1"


def test_finance_issues_and_marks_an_invoice_paid_and_the_brand_sees_it(live_app, new_page):
    from playwright.sync_api import expect

    at = now_utc() - dt.timedelta(days=1)
    with live_app.extensions["network.db"].session_scope() as session:
        shop = make_shop(session)
        partner = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
        make_commission(session, offer=shop.offer, partner=partner, payout="60.00", at=at)
        make_commission(session, offer=shop.offer, partner=partner, payout="25.00", at=at)
        users.create_user(session, SYSTEM, email=FINANCE, role=Role.FINANCE, password=PASSWORD)
        users.create_user(session, SYSTEM, email=BRAND, role=Role.BRAND, brand_id=shop.brand.id, password=PASSWORD)
    page = new_page()
    refused: list[str] = []
    # The browser asks for /favicon.ico on its own (the network serves none): not a page's error.
    page.on(
        "console",
        lambda m: refused.append(m.text) if m.type == "error" and "favicon" not in m.location.get("url", "") else None,
    )
    sign_in(page, live_app.url, FINANCE, PASSWORD)

    page.get_by_role("link", name="Invoices").click()
    expect(page.get_by_text("No draft invoice.")).to_be_visible()
    page.get_by_role("button", name="Build invoices now from every unbilled entry").click()
    expect(page.get_by_text("Built 1 draft invoices.")).to_be_visible()
    check_page(page, "finance-invoices")
    page.get_by_role("cell", name="85.00 USD").locator("xpath=..").get_by_role("link").first.click()
    expect(page.get_by_role("heading", name="The lines").or_(page.get_by_text("The lines"))).to_be_visible()
    check_page(page, "finance-invoice-draft")

    page.get_by_role("button", name="Issue…").click()
    expect(page.get_by_role("heading", name="Issue invoice")).to_be_visible()
    check_page(page, "finance-invoice-confirm")
    page.get_by_role("button", name="Yes, issue invoice").click()
    expect(page.get_by_text("Issue: done.")).to_be_visible()
    expect(page.get_by_role("heading", name="INV-000001")).to_be_visible()

    page.get_by_label("Payment reference").fill("wire 2026-12 #17")
    page.get_by_role("button", name="Mark paid…").click()
    page.get_by_role("button", name="Yes, mark paid invoice").click()
    expect(page.get_by_text("wire 2026-12 #17")).to_be_visible()
    check_page(page, "finance-invoice-paid")

    page.get_by_role("link", name="Margin").click()
    expect(page.get_by_role("rowheader", name="Acme Shop")).to_be_visible()
    check_page(page, "finance-margin")
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_app.url, BRAND, PASSWORD)
    page.get_by_role("link", name="Billing").click()
    expect(page.get_by_role("rowheader", name="INV-000001")).to_be_visible()
    expect(page.get_by_role("cell", name="paid", exact=True)).to_be_visible()
    check_page(page, "brand-billing")
    assert refused == []
