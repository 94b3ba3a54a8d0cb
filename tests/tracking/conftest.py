"""Fixtures for tracking tests: a brand, an active public offer, a partner with a key, and clicks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.offers.models import Offer
from network.partners.models import Partner
from network.tracking import service
from network.tracking.models import Click, Link
from network.tracking.redirect import Tracker
from tests.factories import Api, make_brand, make_key, make_offer, make_partner
from tests.rollups.support import check_rollups

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@dataclass
class World:
    brand: Brand
    partner: Partner
    offer: Offer
    partner_api: Api

    def link(self, session: Session, offer: Offer | None = None, partner: Partner | None = None, **subs: Any) -> Link:
        """Make a link directly (bypassing the API's may-run check, to test the redirect's own)."""
        link = Link(
            code=f"c{session.scalar(select(func.count(Link.id))) or 0}x{id(subs) % 9973}",
            offer_id=(offer or self.offer).id,
            partner_id=(partner or self.partner).id,
            **subs,
        )
        session.add(link)
        session.flush()
        return link


@pytest.fixture
def world(session: Session, client: Any) -> World:
    brand = make_brand(session)
    partner = make_partner(session)
    offer = make_offer(session, brand=brand, fallback_url="https://shop.example/fallback")
    return World(brand, partner, offer, Api(client, make_key(session, role="partner", partner=partner)))


@pytest.fixture
def tracker(app: Any) -> Tracker:
    return app.extensions["network.tracking"]


@pytest.fixture
def clicks(session: Session) -> Iterator[Any]:
    """Call it to flush the buffer and get the click rows, oldest first."""

    def rows() -> list[Click]:
        service.flush_clicks()
        session.expire_all()
        return list(session.scalars(select(Click).order_by(Click.created_at, Click.id)))

    yield rows
    # Every scenario that writes clicks leaves the rollups equal to them.
    service.flush_clicks()
    check_rollups(session)
