"""A small money world for the finance console's page tests: two partners with USD commissions (one with EUR
too) built into payouts awaiting approval by the payouts domain's own build, a finance user, and a brand
user and a partner user who must never see any of it."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from network.accounts.models import Brand
from network.auth import Role
from network.billing import invoicing
from network.partners.models import Partner
from network.payouts import jobs
from network.payouts.models import Payout
from tests.factories import make_partner
from tests.payouts.support import NOW, Shop, exports_fixture, make_commission, make_shop  # noqa: F401
from tests.portal.conftest import make_user, sign_in

FINANCE = "money@example.com"
_ROW = re.compile(r"<tr>(.*?)</tr>", re.S)
_CELL = re.compile(r"<t[hd][^>]*>(.*?)</t[hd]>", re.S)
_TAG = re.compile(r"<[^>]+>")


def rows(page: str) -> list[list[str]]:
    """The body rows of every table of the page, as lists of cell texts."""
    found = []
    for row in _ROW.findall(page):
        cells = [html.unescape(" ".join(_TAG.sub("", c).split())) for c in _CELL.findall(row)]
        if cells and '<th scope="col"' not in row:
            found.append(cells)
    return found


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def page(client: Any, path: str, **query: Any) -> str:
    r = client.get(path, query_string=query or None)
    assert r.status_code == 200, text(r)
    return text(r)


@dataclass
class Money:
    usd: Shop
    eur: Shop
    deals: Partner
    coupons: Partner
    #: The payouts the build made, by (partner name, currency).
    payouts: dict[tuple[str, str], Payout]
    brand: Brand
    #: The draft invoice of the USD shop's revenue (billing), built at the same time.
    invoice_id: int | None = None


@pytest.fixture
def money(session: Any, db: Any, settings: Any, frozen_clock: Any, exports: Path) -> Money:
    """Deal Blog earns 19.50 USD and 60.00 EUR, Coupon Club 30.00 USD; one build makes three payouts."""
    frozen_clock(NOW)
    usd, eur = make_shop(session), make_shop(session, currency="EUR", name="Euro Shop")
    deals = make_partner(session, name="Deal Blog", email="ops@dealblog.example")
    coupons = make_partner(session, name="Coupon Club", email="ops@coupons.example")
    for partner in (deals, coupons):
        partner.payout_min_amount = "10.00"
    make_commission(session, offer=usd.offer, partner=deals, payout="7.00")
    make_commission(session, offer=usd.offer, partner=deals, payout="12.50")
    make_commission(session, offer=eur.offer, partner=deals, payout="60.00")
    make_commission(session, offer=usd.offer, partner=coupons, payout="30.00")
    session.flush()
    jobs.build(db, settings)
    built = session.scalars(select(Payout).order_by(Payout.id)).all()
    names = {deals.id: "Deal Blog", coupons.id: "Coupon Club"}
    make_user(session, email=FINANCE, role=Role.FINANCE)
    make_user(session, email="brand@example.com", role=Role.BRAND, brand_id=usd.brand.id)
    make_user(session, email="ops@dealblog.example", role=Role.PARTNER, partner_id=deals.id)
    session.flush()
    drafts = invoicing.build_invoices(session, run_key="money", period_end=NOW + dt.timedelta(hours=1))
    by_payouts = {(names[p.partner_id], p.currency): p for p in built}
    return Money(usd, eur, deals, coupons, by_payouts, usd.brand, drafts[0])


@pytest.fixture
def finance(client: Any, money: Money) -> Any:
    """The test client, signed in as the finance user."""
    assert sign_in(client, FINANCE).status_code == 302
    return client
