"""Report fixtures: rows written straight with the models, so reports are tested on their own."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.auth import Principal, Role
from network.conversions.models import Conversion
from network.offers.models import Offer
from network.partners.models import Partner
from network.tracking.models import Click, ImpressionCount, Link
from tests.factories import make_brand, make_offer, make_partner

UTC = dt.UTC
D1 = dt.date(2026, 3, 2)
D2 = dt.date(2026, 3, 3)
#: A period holding D1 and D2 whole.
START = dt.datetime(2026, 3, 2, tzinfo=UTC)
END = dt.datetime(2026, 3, 4, tzinfo=UTC)
_SUBS = ("sub1", "sub2", "sub3", "sub4", "sub5")


def at(day: dt.date, hour: int = 12, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=UTC)


def make_link(session: Session, *, offer: Offer, partner: Partner, **subs: str | None) -> Link:
    link = Link(code=secrets.token_urlsafe(9), offer_id=offer.id, partner_id=partner.id, **subs)
    session.add(link)
    session.flush()
    return link


def add_click(
    session: Session,
    link: Link,
    *,
    when: dt.datetime,
    unique: bool = True,
    bot: bool = False,
    country: str | None = None,
    device: str | None = None,
    **subs: str | None,
) -> Click:
    """Write a click as tracking's flush would: its own sub ids, else its link's."""
    values = {name: subs.get(name) or getattr(link, name) for name in _SUBS}
    click = Click(
        id=secrets.token_hex(16),
        link_id=link.id,
        offer_id=link.offer_id,
        partner_id=link.partner_id,
        created_at=when,
        country=country,
        device=device,
        is_unique=unique,
        is_bot=bot,
        **values,
    )
    session.add(click)
    session.flush()
    return click


def add_impressions(session: Session, link: Link, *, day: dt.date, count: int) -> ImpressionCount:
    row = ImpressionCount(link_id=link.id, offer_id=link.offer_id, partner_id=link.partner_id, day=day, count=count)
    session.add(row)
    session.flush()
    return row


def add_conversion(
    session: Session,
    link: Link,
    *,
    when: dt.datetime,
    click: Click | None = None,
    click_id: str | None = None,
    status: str = "approved",
    payout: int = 500,
    revenue: int = 800,
    amount: int | None = None,
    currency: str | None = None,
) -> Conversion:
    """Write a conversion (money in minor units) attributed to `click` (or to a click id with no row)."""
    offer = session.get(Offer, link.offer_id)
    assert offer is not None
    conversion = Conversion(
        offer_id=offer.id,
        event_id=offer.events[0].id,
        brand_id=offer.brand_id,
        partner_id=link.partner_id,
        link_id=link.id,
        click_id=click.id if click is not None else (click_id or secrets.token_hex(16)),
        clicked_at=click.created_at if click is not None else when - dt.timedelta(minutes=5),
        txn_id=secrets.token_hex(6),
        status=status,
        flags=[],
        currency=currency or offer.currency,
        amount_minor=amount,
        payout_minor=payout,
        revenue_minor=revenue,
        created_at=when,
        status_changed_at=when,
    )
    session.add(conversion)
    session.flush()
    return conversion


@dataclass
class World:
    """Two brands, two partners, offers in USD and EUR, and a principal for each role."""

    brand: Brand
    other_brand: Brand
    partner: Partner
    other_partner: Partner
    offer: Offer
    second_offer: Offer
    eur_offer: Offer
    foreign_offer: Offer

    @property
    def admin(self) -> Principal:
        return Principal(Role.ADMIN, key_id=1)

    @property
    def finance(self) -> Principal:
        return Principal(Role.FINANCE, key_id=2)

    @property
    def brand_principal(self) -> Principal:
        return Principal(Role.BRAND, key_id=3, brand_id=self.brand.id)

    @property
    def partner_principal(self) -> Principal:
        return Principal(Role.PARTNER, key_id=4, partner_id=self.partner.id)

    def principal(self, role: str) -> Principal:
        return {
            "admin": self.admin,
            "finance": self.finance,
            "brand": self.brand_principal,
            "partner": self.partner_principal,
        }[role]


@pytest.fixture
def world(session: Session) -> World:
    brand = make_brand(session, name="Acme Shop", currency="USD")
    other_brand = make_brand(session, name="Other Shop", currency="USD")
    return World(
        brand=brand,
        other_brand=other_brand,
        partner=make_partner(session, name="Deal Blog"),
        other_partner=make_partner(session, name="Coupon Site"),
        offer=make_offer(session, brand=brand, name="Spring sale"),
        second_offer=make_offer(session, brand=brand, name="Summer sale"),
        eur_offer=make_offer(session, brand=brand, name="Euro sale", currency="EUR"),
        foreign_offer=make_offer(session, brand=other_brand, name="Other sale", visibility="private"),
    )


def by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    """Return rows keyed by one column (or a tuple of several)."""
    if len(keys) == 1:
        return {row[keys[0]]: row for row in rows}
    return {tuple(row[k] for k in keys): row for row in rows}
