"""In a real chromium: a partner applies to an offer, builds a link (htmx swap, Copy button), sets its postback
URL and sends a test to a local endpoint; each page passes the accessibility check and breaks no CSP rule."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from network.accounts import users
from network.auth import SYSTEM
from tests.browser.conftest import check_page, sign_in
from tests.deliveries.conftest import LOCAL
from tests.deliveries.endpoints import Endpoint, respond
from tests.factories import cpa_event, make_brand, make_offer, make_partner

pytestmark = pytest.mark.browser

PARTNER, PASSWORD = "ops@dealblog.example", "partner password 1"


def _world(live_app: Any) -> None:
    with live_app.extensions["network.db"].session_scope() as session:
        brand = make_brand(session)
        make_offer(
            session,
            brand=brand,
            name="Lead Magnet",
            events=[cpa_event("lead", payout="2.00", revenue="3.00", model="cpl")],
            countries=["US", "CA"],
        )
        make_offer(session, brand=brand, name="Gated Deal", visibility="approval")
        partner = make_partner(session, name="Deal Blog")
        users.create_user(session, SYSTEM, email=PARTNER, role="partner", partner_id=partner.id, password=PASSWORD)
    # Postbacks may reach this machine's 127.0.0.1 over http, as POSTBACK_ALLOW_HTTP and
    # POSTBACK_ALLOWED_NETWORKS allow it.
    live_app.extensions["network.settings"] = dataclasses.replace(
        live_app.extensions["network.settings"], postback_allow_http=True, postback_allowed_networks=LOCAL
    )


def test_a_partner_applies_builds_a_link_and_tests_its_postback(live_app, new_page):
    from playwright.sync_api import expect

    _world(live_app)
    endpoint = Endpoint("127.0.0.1", respond(200, b"pb ok"))
    try:
        page = new_page()
        page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app.url)
        refused: list[str] = []
        page.on(
            "console",
            lambda m: (
                refused.append(page.url + " " + m.text[:60] + str(m.location))
                if "Content Security Policy" in m.text
                else None
            ),
        )
        sign_in(page, live_app.url, PARTNER, PASSWORD)
        expect(page.get_by_role("heading", name="Deal Blog")).to_be_visible()

        # Offers: apply to the approval offer.
        page.goto(f"{live_app.url}/partner/offers")
        expect(page.get_by_role("cell", name=re.compile("2.00 USD per lead"))).to_be_visible()
        expect(page.get_by_text("CA and US only")).to_be_visible()
        check_page(page, "partner-offers")
        page.get_by_role("button", name="Apply to Gated Deal").click()
        expect(page.get_by_role("status", name="Messages")).to_contain_text("Your application is pending.")
        expect(page.get_by_text("Application pending")).to_be_visible()

        # Links: build one; htmx swaps the builder in place (the page is not reloaded).
        page.get_by_role("link", name="build a link").click()
        expect(page.get_by_role("heading", name="Build a tracking link")).to_be_visible()
        check_page(page, "partner-links")
        page.evaluate("window.notReloaded = true")
        expect(page.get_by_label("Offer")).to_have_value(re.compile(r"\d+"))
        page.get_by_label("sub1").fill("spring")
        page.get_by_label("Deep link (optional)").fill("https://elsewhere.example/")
        page.get_by_role("button", name="Build the link").click()
        expect(page.locator("#deep_link-error")).to_contain_text("allowed_domains")
        page.get_by_label("Deep link (optional)").fill("https://shop.example/shoes")
        page.get_by_role("button", name="Build the link").click()
        url = page.get_by_label("Tracking URL")
        expect(url).to_have_value(re.compile(re.escape(live_app.url) + r"/c/[\w-]+$"))
        assert page.evaluate("window.notReloaded") is True
        page.get_by_role("button", name="Copy").click()
        expect(page.get_by_text("Copied.")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == url.input_value()
        expect(page.get_by_role("cell", name="sub1=spring")).to_be_visible()
        check_page(page, "partner-link-built")

        # Postbacks: save the URL, send a test, read the answer.
        page.goto(f"{live_app.url}/partner/postbacks")
        page.get_by_label("Postback URL", exact=True).fill(endpoint.url("/pb?cid={click_id}"))
        page.get_by_role("button", name="Save").click()
        expect(page.get_by_role("status", name="Messages")).to_contain_text("Postback settings saved.")
        expect(page.get_by_role("cell", name="{payout}")).to_be_visible()
        page.evaluate("window.notReloaded = true")
        page.get_by_role("button", name="Send a test").click()
        result = page.locator("#test-result")
        expect(result).to_contain_text("Success")
        expect(result).to_contain_text("pb ok")
        assert page.evaluate("window.notReloaded") is True
        assert len(endpoint.requests) == 1
        check_page(page, "partner-postbacks")
        assert refused == [], "\n".join(refused)
    finally:
        endpoint.close()
