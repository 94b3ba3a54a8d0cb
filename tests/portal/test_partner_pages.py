"""The partner's home, conversions and money pages: their numbers come from real rows through the services,
the filters narrow them, another partner's rows never show, other roles and signed-out visitors are kept
out, and the Stripe button needs its CSRF token."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from network.auth import Role
from network.conversions.models import Conversion
from network.partners.models import Partner
from network.payouts import jobs
from network.payouts.models import Payout
from network.portal import partner as partner_pages
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, Link
from tests.factories import make_partner
from tests.payouts.support import API_KEY, NOW, Shop, make_commission, make_shop
from tests.portal.conftest import csrf_token, make_user, post_form, sign_in
from tests.reports.conftest import add_click, add_conversion, make_link
from tests.stripe_fake.fixtures import fake_stripe  # noqa: F401

PAGES = ("/partner/", "/partner/conversions", "/partner/money")
_ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
_CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
_TAG = re.compile(r"<[^>]+>")


def rows(html: str) -> list[list[str]]:
    """The body rows of every table of the page, as lists of cell texts."""
    found = []
    for row in _ROW.findall(html):
        cells = [" ".join(_TAG.sub("", c).split()) for c in _CELL.findall(row)]
        if cells and '<th scope="col"' not in row:
            found.append(cells)
    return found


def first_cells(html: str) -> list[str]:
    return [r[0] for r in rows(html)]


@dataclass
class World:
    shop: Shop
    partner: Partner
    other: Partner
    today: Conversion
    pending: Conversion
    old: Conversion
    foreign: Conversion


@pytest.fixture
def world(session: Any, frozen_clock: Any) -> World:
    """Deal Blog: 4 clicks and 3 conversions over 30 days on two links; Other Blog: a big one today."""
    frozen_clock(NOW)
    shop = make_shop(session)
    partner = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
    other = make_partner(session, name="Other Blog", email="ops@other.example")
    spring = make_link(session, offer=shop.offer, partner=partner, sub1="spring")
    summer = make_link(session, offer=shop.offer, partner=partner, sub1="summer")
    foreign_link = make_link(session, offer=shop.offer, partner=other, sub1="spring")
    for when, link in (
        (NOW - dt.timedelta(hours=1), spring),
        (NOW - dt.timedelta(hours=2), spring),
        (NOW - dt.timedelta(days=3), summer),
        (NOW - dt.timedelta(days=20), spring),
        (NOW - dt.timedelta(hours=1), foreign_link),
    ):
        add_click(session, link, when=when)
    old = make_commission(session, offer=shop.offer, partner=partner, payout="7.00", at=NOW - dt.timedelta(days=20))
    pending = add_conversion(session, summer, when=NOW - dt.timedelta(days=3), status="pending", payout=300)
    today = make_commission(session, offer=shop.offer, partner=partner, payout="12.50", at=NOW - dt.timedelta(hours=1))
    foreign = make_commission(session, offer=shop.offer, partner=other, payout="99.00", at=NOW - dt.timedelta(hours=1))
    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=partner.id)
    make_user(session, email="ops@other.example", role=Role.PARTNER, partner_id=other.id)
    session.flush()
    return World(shop, partner, other, today, pending, old, foreign)


def page(client: Any, path: str, **query: Any) -> str:
    r = client.get(path, query_string=query or None)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_data(as_text=True)


def test_home_shows_today_7_and_30_days_and_earnings_per_day(client, world):
    sign_in(client, "ops@dealblog.example")
    html = page(client, "/partner/")
    table = rows(html)
    # Period, currency, clicks, conversions, CR (conversions / unique clicks), EPC (earnings / clicks), earnings.
    assert ["Today", "USD", "2", "1", "50.00 %", "6.2500", "12.50"] in table
    assert ["Last 7 days", "USD", "3", "2", "66.67 %", "5.1667", "15.50"] in table
    assert ["Last 30 days", "USD", "4", "3", "75.00 %", "5.6250", "22.50"] in table
    # The same numbers per day, for the chart (its JSON block) and without JavaScript (its table).
    assert ["2026-03-09", "USD", "2", "1", "12.50"] in table
    assert ["2026-03-06", "USD", "1", "1", "3.00"] in table
    assert ["2026-02-17", "USD", "1", "1", "7.00"] in table
    data = re.search(r'<script type="application/json" id="earnings-data">(.*?)</script>', html, re.S)
    assert data is not None
    chart = json.loads(data.group(1))
    assert len(chart["days"]) == 30 and chart["days"][-1] == "2026-03-09"
    (usd,) = chart["series"]
    assert usd["label"] == "Earnings (USD)" and usd["values"][-1] == "12.50" and usd["values"][-4] == "3.00"
    assert usd["values"][0] == "0.00"
    assert "99.00" not in html and "Other Blog" not in html
    # The chart's scripts are files of the app (the CSP allows no inline script).
    assert "/account/assets/vendor/chart.umd.min.js" in html and "/account/assets/chart.js" in html
    asset = client.get("/account/assets/vendor/chart.umd.min.js")
    assert asset.status_code == 200 and b"Chart.js v4" in asset.get_data()
    asset.close()


def test_home_of_a_partner_with_nothing_yet_says_so(client, session, frozen_clock):
    frozen_clock(NOW)
    fresh = make_partner(session, name="Fresh Blog", email="fresh@example.com", status="pending")
    make_user(session, email="fresh@example.com", role=Role.PARTNER, partner_id=fresh.id)
    sign_in(client, "fresh@example.com")
    html = page(client, "/partner/")
    assert "under review" in html
    assert ["Today", "No clicks or conversions"] in rows(html)
    assert "earnings-data" not in html


def test_conversions_list_and_its_filters(client, world, session):
    sign_in(client, "ops@dealblog.example")
    mine = sorted(c.id for c in (world.today, world.pending, world.old))

    def ids(**query: Any) -> list[int]:
        return [int(c[1:]) for c in first_cells(page(client, "/partner/conversions", **query)) if c.startswith("#")]

    assert ids() == mine
    assert ids(status="pending") == [world.pending.id]
    assert ids(sub1="summer") == [world.pending.id]
    assert ids(sub1="spring") == sorted([world.today.id, world.old.id])
    assert ids(start="2026-03-09", end="2026-03-09") == [world.today.id]
    assert ids(start="2026-03-01") == sorted([world.today.id, world.pending.id])
    assert ids(offer_id=str(world.shop.offer.id)) == mine
    other_shop = make_shop(session, name="Other Shop")
    assert ids(offer_id=str(other_shop.offer.id)) == []
    html = page(client, "/partner/conversions", status="approved")
    row = next(r for r in rows(html) if r[0] == f"#{world.today.id}")
    assert row[4:7] == ["approved", "", "12.50 USD"]
    link = session.get(Link, world.today.link_id)
    refused = add_conversion(session, link, when=NOW, status="rejected", payout=100)
    refused.reason = "duplicate_txn"
    session.flush()
    (row,) = [r for r in rows(page(client, "/partner/conversions", status="rejected")) if r[0].startswith("#")]
    assert row[0] == f"#{refused.id}" and row[4:7] == ["rejected", "duplicate_txn", "1.00 USD"]


def test_conversions_list_pages_with_the_after_cursor(client, world, monkeypatch):
    monkeypatch.setattr(partner_pages, "PAGE", 2)
    sign_in(client, "ops@dealblog.example")
    first = page(client, "/partner/conversions", sub1="spring")
    assert len([c for c in first_cells(first) if c.startswith("#")]) == 2
    found = re.search(r'href="([^"]*after=\d+[^"]*)">Next page', first)
    assert found is not None and "sub1=spring" in found.group(1)
    assert first_cells(page(client, found.group(1).replace("&amp;", "&"))) == ["No conversion matches."]
    everything = page(client, "/partner/conversions")
    found = re.search(r'href="([^"]*)">Next page', everything)
    assert found is not None
    assert first_cells(page(client, found.group(1).replace("&amp;", "&"))) == [f"#{world.today.id}"]


def test_conversions_show_their_sub_ids_but_not_their_flags(client, world, session):
    world.pending.flags = ["fast_conversion"]
    session.flush()
    sign_in(client, "ops@dealblog.example")
    html = page(client, "/partner/conversions")
    header = re.search(r"<thead>(.*?)</thead>", html, re.S)
    assert header is not None and [f"Sub {n}" for n in range(1, 6)] == _CELL.findall(header.group(1))[8:]
    subs = {r[0]: r[8:] for r in rows(html) if r[0].startswith("#")}
    assert subs[f"#{world.pending.id}"] == ["summer", "", "", "", ""]
    assert "fast_conversion" not in html and "flag" not in html.lower()


def test_a_conversion_shows_the_sub_ids_its_click_carried(client, world, session):
    link = session.get(Link, world.pending.link_id)
    when = NOW - dt.timedelta(days=2)
    click = Click(id=ClickIdCodec("test").issue(link.id, when), link_id=link.id, offer_id=link.offer_id)
    click.partner_id, click.created_at, click.is_unique, click.is_bot = link.partner_id, when, True, False
    click.sub1, click.sub2, click.sub5 = link.sub1, "newsletter", "a&b"  # as a click's flush writes them
    session.add(click)
    conversion = add_conversion(session, link, when=when, click=click, status="pending")
    session.flush()
    sign_in(client, "ops@dealblog.example")
    subs = {r[0]: r[8:] for r in rows(page(client, "/partner/conversions")) if r[0].startswith("#")}
    assert subs[f"#{conversion.id}"] == [click.sub1 or "", "newsletter", "", "", "a&amp;b"]


def test_money_pages_its_payouts_past_a_page(client, world, session, monkeypatch):
    monkeypatch.setattr(partner_pages, "PAGE", 2)
    made = [Payout(partner_id=world.partner.id, currency="USD", amount_minor=100 * n, entry_count=1) for n in (1, 2, 3)]
    session.add_all([*made, Payout(partner_id=world.other.id, currency="USD", amount_minor=9900, entry_count=1)])
    session.flush()
    sign_in(client, "ops@dealblog.example")

    def payout_ids(html: str) -> list[str]:
        return [r[0] for r in rows(html) if len(r) == 5 and r[0].startswith("#")]

    first = page(client, "/partner/money")
    assert payout_ids(first) == [f"#{p.id}" for p in made[:2]]
    found = re.search(r'href="([^"]*payouts_after=\d+[^"]*)">Next page of the payouts', first)
    assert found is not None
    second = page(client, found.group(1).replace("&amp;", "&"))
    assert payout_ids(second) == [f"#{made[2].id}"]
    assert "Next page of the payouts" not in second and "99.00" not in second
    # The ledger's own cursor is kept while the payouts page on, and the other way round.
    ledger_next = re.search(r'href="([^"]*)">Next page of the ledger', first)
    assert ledger_next is not None and "payouts_after" not in ledger_next.group(1)
    kept = page(client, "/partner/money", after="1", payouts_after=str(made[1].id))
    assert payout_ids(kept) == [f"#{made[2].id}"]


def test_bad_filters_answer_400_naming_the_field(client, world):
    sign_in(client, "ops@dealblog.example")
    r = client.get("/partner/conversions", query_string={"start": "2026-03-09", "end": "2026-03-01"})
    assert r.status_code == 400 and 'id="end-error"' in r.get_data(as_text=True)
    r = client.get("/partner/conversions", query_string={"start": "yesterday"})
    assert r.status_code == 400 and 'id="start-error"' in r.get_data(as_text=True)
    r = client.get("/partner/conversions", query_string={"offer_id": "x"})
    assert r.status_code == 400 and 'id="offer_id-error"' in r.get_data(as_text=True)


def test_money_shows_balance_payouts_and_ledger(client, world, db, session, settings):
    for partner in (world.partner, world.other):
        partner.payout_min_amount = "10.00"
    session.flush()
    jobs.build(db, settings)
    sign_in(client, "ops@dealblog.example")
    html = page(client, "/partner/money")
    table = rows(html)
    # Currency, pending, available, in a payout, paid.
    assert ["USD", "3.00", "0.00", "19.50", "0.00"] in table
    payout_rows = [r for r in table if len(r) == 5 and r[0].startswith("#")]
    mine = session.query(Payout).filter_by(partner_id=world.partner.id).one()
    assert [(r[0], r[2], r[3]) for r in payout_rows] == [(f"#{mine.id}", "19.50 USD", "pending approval")]
    ledger_rows = [r for r in table if len(r) == 7]
    assert [(r[2], r[3], r[4]) for r in ledger_rows] == [
        ("commission", "7.00 USD", f"#{world.old.id}"),
        ("commission", "12.50 USD", f"#{world.today.id}"),
    ]
    assert "99.00" not in html
    foreign = session.query(Payout).filter_by(partner_id=world.other.id).one()
    assert foreign.id != mine.id and "99.00" not in html


def test_no_page_shows_another_partners_rows(client, world):
    sign_in(client, "ops@other.example")
    for path in PAGES:
        html = page(client, path)
        assert "12.50" not in html and "7.00" not in html and "Deal Blog" not in html
    cells = first_cells(page(client, "/partner/conversions", status="pending"))
    assert cells == ["No conversion matches."]
    assert first_cells(page(client, "/partner/conversions", sub1="summer")) == ["No conversion matches."]
    assert [c for c in first_cells(page(client, "/partner/conversions")) if c.startswith("#")] == [
        f"#{world.foreign.id}"
    ]


@pytest.mark.parametrize("role", [Role.BRAND, Role.FINANCE, Role.ADMIN])
def test_other_roles_get_403_on_partner_pages(client, world, session, role):
    brand_id = world.shop.brand.id if role is Role.BRAND else None
    make_user(session, email="someone@example.com", role=role, brand_id=brand_id)
    sign_in(client, "someone@example.com")
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    token = csrf_token(client.get("/account/profile").get_data(as_text=True))
    assert client.post("/partner/money/stripe", data={"csrf_token": token}).status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client, world):
    for path in PAGES:
        r = client.get(path)
        assert r.status_code == 302 and "/account/sign-in" in r.headers["Location"], path
    # A signed-out POST carries no session's CSRF token: refused before anything else.
    assert client.post("/partner/money/stripe").status_code == 400
    token = csrf_token(client.get("/account/sign-in").get_data(as_text=True))
    r = client.post("/partner/money/stripe", data={"csrf_token": token})
    assert r.status_code == 302 and "/account/sign-in" in r.headers["Location"]


def test_the_stripe_button_without_its_csrf_token_is_refused(client, world, app, fake_stripe):  # noqa: F811
    app.extensions["network.settings"] = dataclasses.replace(
        app.extensions["network.settings"], stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url
    )
    sign_in(client, "ops@dealblog.example")
    r = client.post("/partner/money/stripe")
    assert r.status_code == 400 and "Form expired" in r.get_data(as_text=True)
    assert fake_stripe.accounts == {}


def test_the_stripe_button_sends_the_partner_to_stripes_onboarding(client, world, app, session, fake_stripe):  # noqa: F811
    app.extensions["network.settings"] = dataclasses.replace(
        app.extensions["network.settings"], stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url
    )
    sign_in(client, "ops@dealblog.example")
    r = post_form(client, "/partner/money/stripe", {}, form_page="/partner/money")
    assert r.status_code == 302
    (account_id,) = list(fake_stripe.accounts)
    assert r.headers["Location"].startswith(f"https://connect.stripe.com/setup/e/{account_id}/")
    session.expire_all()
    assert session.get(Partner, world.partner.id).stripe_account_id == account_id
    assert session.get(Partner, world.other.id).stripe_account_id is None
    assert "not ready for payouts yet" in page(client, "/partner/money")


def test_the_stripe_button_without_stripe_configured_says_payouts_are_manual(client, world):
    sign_in(client, "ops@dealblog.example")
    r = post_form(client, "/partner/money/stripe", {}, form_page="/partner/money", follow_redirects=True)
    assert r.status_code == 200 and r.request.path == "/partner/money"
    assert "Payouts on this network are sent by hand" in r.get_data(as_text=True)
