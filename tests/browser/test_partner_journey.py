"""In a real chromium, a new affiliate's whole job (issue #19): it signs up, an admin approves it, it signs in,
applies to an approval offer that the brand approves (through the API, over HTTP), builds a link, the link is
clicked and a postback converts it (real HTTP to the live server), the conversion and the earnings appear on its
pages, it sets a postback URL and sends a test, and it reads its balance. Each page passes the accessibility
check and is screenshotted."""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from network.tracking import service as tracking
from tests.browser.conftest import check_page, sign_in, sign_up
from tests.deliveries.conftest import LOCAL
from tests.deliveries.endpoints import Endpoint, respond
from tests.factories import cpa_event, make_brand, make_key, make_offer

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "admin@example.com", "admin password 1"
PARTNER, PARTNER_PASSWORD = "ops@dealblog.example", "partner password 1"
TRAFFIC = "SEO articles and a weekly newsletter"
#: A visitor's browser: a click without one counts as a bot's (never unique, so no CR).
VISITOR = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
}


def _http(
    base: str, method: str, path: str, key: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One real HTTP request to the live server, redirects not followed; return status, headers, body."""
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        sent = {**(headers or {}), **({"Authorization": f"Bearer {key}"} if key else {})}
        conn.request(method, path, headers=sent)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def _world(live_app: Any) -> tuple[int, str, str]:
    """An admin user, a brand with an approval offer; return the offer id, the brand's key and postback token."""
    with live_app.extensions["network.db"].session_scope() as session:
        users.create_user(session, SYSTEM, email=ADMIN, role="admin", password=ADMIN_PASSWORD)
        brand = make_brand(session)
        offer = make_offer(
            session,
            brand=brand,
            name="Gated Deal",
            visibility="approval",
            events=[cpa_event("sale", payout="7.25", revenue="10.00")],
        )
        key = make_key(session, role=Role.BRAND, brand=brand)
        ids = (offer.id, key, brand.postback_token)
    live_app.extensions["network.settings"] = dataclasses.replace(
        live_app.extensions["network.settings"], postback_allow_http=True, postback_allowed_networks=LOCAL
    )
    return ids


def _brand_approves(base: str, offer_id: int, key: str) -> None:
    """The brand lists the offer's applications and approves the pending one, through the API."""
    status, _, body = _http(base, "GET", f"/api/v1/offers/{offer_id}/applications?status=pending", key)
    assert status == 200, body
    (application,) = json.loads(body)["items"]
    status, _, body = _http(base, "POST", f"/api/v1/offers/{offer_id}/applications/{application['id']}/approve", key)
    assert status == 200, body
    assert json.loads(body)["status"] == "approved"


def test_a_new_affiliate_signs_up_and_does_its_whole_job_in_the_browser(live_app, new_page):
    from playwright.sync_api import expect

    offer_id, brand_key, token = _world(live_app)
    base = live_app.url
    endpoint = Endpoint("127.0.0.1", respond(200, b"pb ok"))
    try:
        # 1. Sign up.
        partner = new_page()
        sign_up(partner, base, name="Deal Blog", email=PARTNER, password=PARTNER_PASSWORD, traffic_sources=TRAFFIC)
        expect(partner.get_by_role("heading", name="Application received")).to_be_visible()
        check_page(partner, "journey-1-application-received")

        # 2. The admin approves it.
        admin = new_page()
        sign_in(admin, base, ADMIN, ADMIN_PASSWORD)
        admin.get_by_role("navigation", name="Main").get_by_role("link", name="Partners").click()
        expect(admin.get_by_role("cell", name="SEO articles and a weekly newsletter")).to_be_visible()
        check_page(admin, "journey-2-admin-applications")
        admin.get_by_role("button", name="Approve Deal Blog").click()
        expect(admin.get_by_role("status")).to_contain_text("Deal Blog: approved.")

        # 3. The partner signs in.
        sign_in(partner, base, PARTNER, PARTNER_PASSWORD)
        expect(partner.get_by_role("heading", name="Deal Blog")).to_be_visible()
        expect(partner.get_by_text("Your partner account is active.")).to_be_visible()
        check_page(partner, "journey-3-partner-home-new")

        # 4. It applies to the approval offer; it cannot build a link for it yet.
        partner.get_by_role("link", name="Offers").click()
        partner.get_by_role("button", name="Apply to Gated Deal").click()
        expect(partner.get_by_role("status", name="Messages")).to_contain_text("Your application is pending.")
        expect(partner.get_by_text("Application pending")).to_be_visible()
        check_page(partner, "journey-4-offers-pending")

        # 5. The brand approves the application (no brand console yet: its API, over HTTP).
        _brand_approves(base, offer_id, brand_key)
        partner.reload()
        expect(partner.get_by_text("Application pending")).to_have_count(0)
        check_page(partner, "journey-5-offers-approved")

        # 6. It builds a link.
        partner.get_by_role("link", name="Links").click()
        expect(partner.get_by_role("heading", name="Build a tracking link")).to_be_visible()
        partner.get_by_label("Offer").select_option(label=f"Gated Deal (#{offer_id})")
        partner.get_by_label("sub1").fill("spring")
        partner.get_by_role("button", name="Build the link").click()
        tracking_url = partner.get_by_label("Tracking URL")
        expect(tracking_url).to_have_value(re.compile(re.escape(base) + r"/c/[\w-]+$"))
        check_page(partner, "journey-6-link-built")
        path = urlsplit(tracking_url.input_value()).path

        # 7. A visitor clicks it: the redirect carries the click id.
        status, headers, _ = _http(base, "GET", path, headers=VISITOR)
        assert status == 302, status
        destination = urlsplit(headers["Location"])
        assert destination.netloc == "shop.example"
        click_id = parse_qs(destination.query)["cid"][0]
        tracking.flush_clicks()  # the click writer buffers; the postback and the pages read the row

        # 8. The brand's postback converts it.
        status, _, body = _http(base, "GET", f"/postback?click_id={click_id}&event=sale&txn_id=J-1&token={token}")
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "approved", answer

        # 9. The conversion and the earnings appear on its pages.
        partner.get_by_role("link", name="Conversions").click()
        expect(partner.get_by_role("heading", name="Conversions")).to_be_visible()
        expect(partner.get_by_role("cell", name="7.25 USD")).to_be_visible()
        # Conversion, created, offer, event, status, reason, earnings.
        expect(partner.get_by_role("row", name=re.compile(rf"#{offer_id} sale approved 7\.25 USD"))).to_be_visible()
        check_page(partner, "journey-9-conversions")
        partner.get_by_role("link", name="Home").click()
        # Currency, clicks, conversions, CR, EPC, earnings.
        expect(partner.get_by_role("row", name="Today")).to_contain_text("USD 1 1 100.00 % 7.2500 7.25")
        check_page(partner, "journey-9-home")

        # 10. It sets its postback URL and sends a test to a local listener.
        partner.get_by_role("link", name="Postbacks").click()
        partner.get_by_label("Postback URL", exact=True).fill(endpoint.url("/pb?cid={click_id}"))
        partner.get_by_role("button", name="Save").click()
        expect(partner.get_by_role("status", name="Messages")).to_contain_text("Postback settings saved.")
        partner.get_by_role("button", name="Send a test").click()
        expect(partner.get_by_text("Success")).to_be_visible()
        expect(partner.get_by_text("pb ok")).to_be_visible()
        assert len(endpoint.requests) == 1
        check_page(partner, "journey-10-postbacks")

        # 11. Its balance: the approved commission is available for the next payout, and in the ledger.
        partner.get_by_role("link", name="Money").click()
        expect(partner.get_by_role("heading", name="Balance")).to_be_visible()
        # Currency, pending, available, in a payout, paid.
        expect(partner.get_by_role("row", name="USD 0.00 7.25 0.00 0.00")).to_be_visible()
        expect(partner.get_by_role("cell", name="commission")).to_be_visible()
        check_page(partner, "journey-11-money")
    finally:
        endpoint.close()
