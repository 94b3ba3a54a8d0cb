"""In a real chromium, a brand's main job in its console (issue #22): it signs in to its figures, creates an
offer and activates it after confirming, approves a partner's application, watches the postback log show a
postback that arrives over HTTP (the log refreshes by itself), and reverses the conversion with a reason.
Each page passes the accessibility check and is screenshotted."""

from __future__ import annotations

import http.client
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from network.offers.models import OfferAccess
from network.tracking import service as tracking
from tests.browser.conftest import check_page, sign_in
from tests.factories import make_brand, make_key, make_offer, make_partner

pytestmark = pytest.mark.browser

BRAND, BRAND_PASSWORD = "team@acme.example", "brand password 1"
VISITOR = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
}


def _http(
    base: str, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=10)
    try:
        sent = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=sent)
        answer = conn.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        conn.close()


def _world(live_app: Any) -> dict[str, Any]:
    """A brand with a user and an approval offer a partner applied to; the partner's API key."""
    with live_app.extensions["network.db"].session_scope() as session:
        brand = make_brand(session, name="Acme Shop")
        users.create_user(session, SYSTEM, email=BRAND, role="brand", brand_id=brand.id, password=BRAND_PASSWORD)
        gated = make_offer(session, brand=brand, name="Gated Deal", visibility="approval")
        partner = make_partner(session, name="Deal Blog")
        session.add(OfferAccess(offer_id=gated.id, partner_id=partner.id, kind="application", status="pending"))
        return {"partner_id": partner.id, "partner_key": make_key(session, role=Role.PARTNER, partner=partner),
                "token": brand.postback_token}  # fmt: skip


def _convert(base: str, offer_id: int, world: dict[str, Any]) -> None:
    """The partner takes a link, a visitor clicks it, the brand's server posts back the sale."""
    auth = {"Authorization": f"Bearer {world['partner_key']}"}
    status, _, body = _http(base, "POST", "/api/v1/links", headers=auth, body={"offer_id": offer_id})
    assert status == 201, body
    status, headers, _ = _http(base, "GET", urlsplit(json.loads(body)["url"]).path, headers=VISITOR)
    assert status == 302, status
    click_id = parse_qs(urlsplit(headers["Location"]).query)["cid"][0]
    tracking.flush_clicks()
    status, _, body = _http(base, "GET", f"/postback?click_id={click_id}&event=sale&txn_id=B-1&token={world['token']}")
    assert status == 200 and json.loads(body)["status"] == "approved", body


def test_a_brand_does_its_main_job_in_the_browser(live_app, new_page):
    from playwright.sync_api import expect

    world = _world(live_app)
    base = live_app.url
    page = new_page()

    # 1. It signs in and lands on its figures.
    sign_in(page, base, BRAND, BRAND_PASSWORD)
    expect(page.get_by_role("heading", name="Acme Shop")).to_be_visible()
    expect(page.get_by_role("heading", name="Your figures")).to_be_visible()
    check_page(page, "brand-1-home")

    # 2. It creates an offer: the form says what each field means; a refusal shows beside its field.
    page.get_by_role("link", name="Offers", exact=True).click()
    page.get_by_role("button", name="Create an offer").click()
    page.get_by_label("Name", exact=True).fill("Spring sale")
    page.get_by_label("Destination URL").fill("https://shop.example/landing?cid={click_id}")
    page.get_by_label("Deep-link domains").fill("shop.example")
    page.get_by_label("Event key").fill("sale")
    page.get_by_label("Commission model").select_option("cpa")
    page.get_by_label("Partner payout, flat").fill("9.00")
    page.get_by_label("Your price, flat").fill("8.00")
    check_page(page, "brand-2-offer-form")
    page.get_by_role("button", name="Save the offer").click()
    expect(page.get_by_text("only an admin may allow a loss leader")).to_be_visible()
    check_page(page, "brand-2-offer-refused")
    page.get_by_label("Partner payout, flat").fill("5.00")
    page.get_by_role("button", name="Save the offer").click()
    expect(page.get_by_role("status", name="Messages")).to_contain_text("Spring sale: created as a draft.")
    offer_id = int(re.search(r"/brand/offers/(\d+)$", page.url).group(1))  # type: ignore[union-attr]

    # 3. It activates it, after confirming.
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("heading", name="Activate Spring sale?")).to_be_visible()
    check_page(page, "brand-3-confirm-activate")
    page.get_by_role("button", name="Yes, activate it").click()
    expect(page.get_by_role("status", name="Messages")).to_contain_text("Spring sale is now active.")

    # 4. It approves the partner's application to its approval offer.
    page.get_by_role("link", name="Partners", exact=True).click()
    check_page(page, "brand-4-partners")
    page.get_by_role("button", name=f"Approve partner #{world['partner_id']} for Gated Deal").click()
    expect(page.get_by_role("status", name="Messages")).to_contain_text(f"Partner #{world['partner_id']}: approved.")

    # 5. The postback log shows a postback as it arrives, without a reload.
    page.get_by_role("link", name="Integration", exact=True).click()
    expect(page.get_by_text("No postback in the last 30 minutes.")).to_be_visible()
    check_page(page, "brand-5-integration")
    _convert(base, offer_id, world)
    row = page.get_by_role("row", name=re.compile(r"B-1"))
    expect(row).to_contain_text("approved", timeout=15_000)
    check_page(page, "brand-5-integration-log")

    # 6. It reverses the conversion with a reason.
    page.get_by_role("link", name="Conversions", exact=True).click()
    page.get_by_role("checkbox").first.check()
    page.get_by_label("New status").select_option("reversed")
    page.get_by_label("Reason", exact=True).fill("refunded")
    check_page(page, "brand-6-conversions")
    page.get_by_role("button", name="Change the ticked conversions").click()
    expect(page.get_by_role("status", name="Messages")).to_contain_text("1 conversion reversed.")
    expect(page.get_by_role("row", name=re.compile(r"B-1"))).to_contain_text("reversed")
    page.get_by_role("row", name=re.compile(r"B-1")).get_by_role("link").click()
    expect(page.get_by_role("cell", name="refunded")).to_be_visible()
    check_page(page, "brand-6-conversion")

    # 7. Its reports show the day's spend (the reversal left out).
    page.get_by_role("link", name="Reports", exact=True).click()
    expect(page.get_by_role("link", name="Download as CSV")).to_be_visible()
    check_page(page, "brand-7-reports")

    # 8. The offers list and the token's rotation page pass the same checks.
    page.get_by_role("link", name="Offers", exact=True).click()
    expect(page.get_by_role("link", name="Pause Spring sale")).to_be_visible()
    check_page(page, "brand-8-offers")
    page.get_by_role("link", name="Integration", exact=True).click()
    page.get_by_role("link", name="Make a new token…").click()
    expect(page.get_by_role("heading", name="Make a new postback token?")).to_be_visible()
    check_page(page, "brand-8-rotate")
