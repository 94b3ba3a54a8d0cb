"""The brand console's world: two brands, each with a signed-in user, offers, partners, clicks, conversions and
postback log lines, so every page can be checked for its own rows and for never showing the other brand's."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.auth import SYSTEM, Role
from network.conversions.models import Conversion, PostbackLog
from network.offers import service as offers
from network.offers.models import Offer, OfferAccess
from network.partners.models import Partner
from tests.factories import cpa_event, make_brand, make_offer, make_partner
from tests.payouts.support import NOW
from tests.portal.conftest import csrf_token, make_user, sign_in
from tests.reports.conftest import add_click, add_conversion, make_link

ME = "team@acme.example"
THEM = "team@other.example"
HTMX = {"HX-Request": "true"}
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


def text(response: Any) -> str:
    return response.get_data(as_text=True)


def page(client: Any, path: str, **query: Any) -> str:
    r = client.get(path, query_string=query or None)
    assert r.status_code == 200, text(r)
    return text(r)


def token_of(client: Any, path: str = "/brand/offers") -> str:
    return csrf_token(page(client, path))


@dataclass
class World:
    brand: Brand
    other_brand: Brand
    offer: Offer
    gated: Offer
    foreign: Offer
    partner: Partner
    other_partner: Partner
    approved: Conversion
    pending: Conversion
    foreign_conversion: Conversion
    application: OfferAccess
    foreign_application: OfferAccess
    log_line: PostbackLog
    foreign_log_line: PostbackLog
    me: Any
    them: Any


def _log(session: Session, brand: Brand, offer: Offer, conversion: Conversion, txn_id: str) -> PostbackLog:
    line = PostbackLog(
        received_at=NOW - dt.timedelta(minutes=5), source="postback", method="GET", brand_id=brand.id,
        offer_id=offer.id, click_id=conversion.click_id, txn_id=txn_id, params={"txn_id": txn_id, "event": "sale"},
        http_status=200, conversion_id=conversion.id, status=conversion.status, reason=None, duplicate=False,
    )  # fmt: skip
    session.add(line)
    return line


@pytest.fixture
def world(app: Any, session: Session, frozen_clock: Any) -> World:
    """Acme Shop (signed in as ME): Spring sale with clicks and two conversions, Gated Deal with an application.
    Other Shop (signed in as THEM): Foreign sale with a big conversion, an application and a log line."""
    frozen_clock(NOW)
    brand = make_brand(session, name="Acme Shop")
    other_brand = make_brand(session, name="Other Shop")
    offer = make_offer(
        session, brand=brand, name="Spring sale", events=[cpa_event("sale", payout="5.00", revenue="8.00")]
    )
    gated = make_offer(session, brand=brand, name="Gated Deal", visibility="approval")
    foreign = make_offer(
        session, brand=other_brand, name="Foreign sale", visibility="approval",
        events=[cpa_event("sale", payout="90.00", revenue="99.00")],
    )  # fmt: skip
    partner = make_partner(session, name="Deal Blog")
    other_partner = make_partner(session, name="Coupon Site")
    link = make_link(session, offer=offer, partner=partner, sub1="spring")
    foreign_link = make_link(session, offer=foreign, partner=other_partner)
    for hours in (1, 2, 30):
        add_click(session, link, when=NOW - dt.timedelta(hours=hours))
    add_click(session, foreign_link, when=NOW - dt.timedelta(hours=1))
    approved = add_conversion(session, link, when=NOW - dt.timedelta(hours=1), payout=500, revenue=800, amount=4000)
    pending = add_conversion(
        session, link, when=NOW - dt.timedelta(hours=30), status="pending", payout=500, revenue=800
    )
    pending.flags = ["bot"]
    foreign_conversion = add_conversion(
        session, foreign_link, when=NOW - dt.timedelta(hours=1), payout=9000, revenue=9900
    )
    application = OfferAccess(offer_id=gated.id, partner_id=partner.id, kind="application", status="pending",
                              note="Newsletter of 40k")  # fmt: skip
    foreign_application = OfferAccess(offer_id=foreign.id, partner_id=other_partner.id, kind="application",
                                      status="pending", note="Coupons galore")  # fmt: skip
    session.add_all([application, foreign_application])
    log_line = _log(session, brand, offer, approved, "MINE-1")
    foreign_log_line = _log(session, other_brand, foreign, foreign_conversion, "THEIRS-1")
    make_user(session, email=ME, role=Role.BRAND, brand_id=brand.id)
    make_user(session, email=THEM, role=Role.BRAND, brand_id=other_brand.id)
    session.flush()
    me, them = app.test_client(), app.test_client()
    assert sign_in(me, ME).status_code == 302
    assert sign_in(them, THEM).status_code == 302
    return World(brand, other_brand, offer, gated, foreign, partner, other_partner, approved, pending,
                 foreign_conversion, application, foreign_application, log_line, foreign_log_line, me, them)  # fmt: skip


def override(session: Session, offer: Offer, partner: Partner, payout: str) -> Any:
    return offers.set_override(session, SYSTEM, offer.id, {"partner_id": partner.id, "event": "sale", "payout": payout})
