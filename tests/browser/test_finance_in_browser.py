"""In a real chromium: finance signs in, runs payouts, bulk-approves them behind the confirmation that states
their count and sum, runs payouts again and sees them paid, and downloads the run's CSV; every page passes
the accessibility check, with no script refused by the CSP."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from network.accounts import users
from network.auth import SYSTEM, Role
from network.clock import now_utc
from network.payouts import settlement
from tests.browser.conftest import check_page, sign_in
from tests.factories import make_partner
from tests.payouts.support import make_commission, make_shop

pytestmark = pytest.mark.browser

FINANCE, PASSWORD = "money@example.com", "finance password 1"


def _seed(live_app) -> None:  # type: ignore[no-untyped-def]
    at = now_utc() - dt.timedelta(days=1)
    with live_app.extensions["network.db"].session_scope() as session:
        shop = make_shop(session)
        deals = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
        coupons = make_partner(session, name="Coupon Club", email="ops@coupons.example")
        make_commission(session, offer=shop.offer, partner=deals, payout="60.00", at=at)
        make_commission(session, offer=shop.offer, partner=coupons, payout="25.00", at=at)
        make_commission(session, offer=shop.offer, partner=coupons, payout="30.00", at=at)
        users.create_user(session, SYSTEM, email=FINANCE, role=Role.FINANCE, password=PASSWORD)


def test_finance_runs_approves_pays_and_downloads_the_export(live_app, new_page, tmp_path, monkeypatch):
    from playwright.sync_api import expect

    monkeypatch.setattr(settlement, "DEFAULT_EXPORT_DIR", tmp_path / "exports")
    _seed(live_app)
    page = new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if m.type == "error" else None)
    sign_in(page, live_app.url, FINANCE, PASSWORD)

    expect(page.get_by_role("heading", name="Payouts", exact=True)).to_be_visible()
    expect(page.get_by_text("No payout matches.").first).to_be_visible()
    check_page(page, "finance-payouts-empty")

    page.get_by_role("link", name="Runs").click()
    expect(page.get_by_role("heading", name="Schedule")).to_be_visible()
    check_page(page, "finance-runs")
    page.get_by_role("button", name="Run payouts now").click()
    expect(page.get_by_role("status")).to_contain_text("2 payouts built (awaiting approval)")
    expect(page.get_by_role("cell", name="55.00 USD")).to_be_visible()
    check_page(page, "finance-run-built")

    page.get_by_role("link", name="Payouts", exact=True).click()
    expect(page.get_by_role("row", name="USD 2 115.00 USD")).to_be_visible()
    page.get_by_role("link", name="Tick every payout of this page").click()
    expect(page.get_by_label("Tick payout", exact=False).first).to_be_checked()
    page.get_by_role("button", name="Approve the ticked").click()
    # htmx swaps the confirmation into the page; it states the count and the sum before anything moves.
    confirm = page.get_by_role("button", name="Yes, approve 2 payouts: 115.00 USD")
    expect(confirm).to_be_visible()
    expect(page.get_by_role("heading", name="Approve 2 payouts: 115.00 USD?")).to_be_visible()
    check_page(page, "finance-bulk-confirmation")
    confirm.click()
    expect(page.get_by_role("status")).to_contain_text("Approved 2 payouts: 115.00 USD.")
    expect(page.get_by_text("No payout matches.").first).to_be_visible()

    page.get_by_role("link", name="Runs").click()
    page.get_by_role("button", name="Run payouts now").click()
    expect(page.get_by_role("status")).to_contain_text("2 paid, 0 failed")
    expect(page.get_by_role("cell", name="Paid", exact=True)).to_have_count(2)
    check_page(page, "finance-run-paid")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download the CSV of the payouts this run paid").click()
    download = info.value
    table = list(csv.DictReader(io.StringIO(_read(download, tmp_path))))
    assert sorted((t["partner_name"], t["amount"], t["currency"]) for t in table) == [
        ("Coupon Club", "55.00", "USD"),
        ("Deal Blog", "60.00", "USD"),
    ]

    page.get_by_role("link", name="Payouts", exact=True).click()
    page.get_by_label("Status").select_option("paid")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("row", name="USD 2 115.00 USD")).to_be_visible()
    expect(page.get_by_role("cell", name="Paid", exact=True)).to_have_count(2)
    check_page(page, "finance-payouts-paid")

    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("cell", name="payout.paid")).to_have_count(2)
    expect(page.get_by_role("cell", name=FINANCE).first).to_be_visible()
    check_page(page, "finance-audit")

    # The other pages pass the accessibility check too: a payout, the failed ones, a ledger with an adjustment.
    page.get_by_role("link", name="payout #1").first.click()
    expect(page.get_by_role("heading", name="Entries")).to_be_visible()
    expect(page.get_by_role("cell", name="payout.paid")).to_be_visible()
    check_page(page, "finance-payout")
    page.get_by_role("link", name="Failed").click()
    expect(page.get_by_role("heading", name="Outcome unknown")).to_be_visible()
    check_page(page, "finance-problems")
    page.get_by_role("link", name="Ledgers").click()
    page.get_by_role("link", name="Deal Blog").click()
    page.get_by_label("Amount").fill("-5.00")
    page.get_by_label("Memo").fill("returned goods")
    page.get_by_role("button", name="Book the adjustment").click()
    expect(page.get_by_role("status")).to_contain_text("booked: -5.00 USD.")
    expect(page.get_by_role("cell", name="returned goods", exact=True)).to_be_visible()
    check_page(page, "finance-ledger")
    assert not [m for m in refused if "Content Security Policy" in m], refused


def _read(download, folder) -> str:  # type: ignore[no-untyped-def]
    path = folder / "downloaded.csv"
    download.save_as(str(path))
    assert download.suggested_filename.startswith("payouts-run-")
    return path.read_text()
