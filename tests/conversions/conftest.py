"""Builders and fixtures for conversion tests: a brand's offer, a partner's link, clicks, postbacks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.clock import UTC
from network.conversions.models import Conversion, PostbackLog
from network.conversions.signals import status_changed
from network.offers.models import Offer
from network.partners.models import Partner
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, Link
from tests.conversions.invariants import check_invariants
from tests.factories import Api, make_brand, make_key, make_offer, make_partner

#: tests/conftest.py's make_settings secret: click ids issued with it verify in the app.
SECRET = "test-secret-key"
CODEC = ClickIdCodec(SECRET)
#: A fixed "now" for tests that freeze the clock.
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

_codes = count(1)


def make_link(session: Session, *, offer: Offer, partner: Partner) -> Link:
    """Make a tracking link directly."""
    link = Link(code=f"cv{next(_codes)}x{offer.id}p{partner.id}", offer_id=offer.id, partner_id=partner.id)
    session.add(link)
    session.flush()
    return link


def make_click(
    session: Session | None,
    link: Link,
    *,
    at: dt.datetime,
    country: str | None = None,
    is_bot: bool = False,
    is_unique: bool = True,
    codec: ClickIdCodec = CODEC,
    visitor: str | None = None,
    ip: str | None = None,
) -> str:
    """Issue a click id for `link` at `at`; with a session, also write its click row."""
    click_id = codec.issue(link.id, at)
    if session is not None:
        session.add(
            Click(
                id=click_id,
                link_id=link.id,
                offer_id=link.offer_id,
                partner_id=link.partner_id,
                created_at=at,
                country=country,
                device="desktop",
                is_bot=is_bot,
                is_unique=is_unique,
                visitor=visitor,
                ip=ip,
            )
        )
        session.flush()
    return click_id


@dataclass
class Shop:
    """A brand with an active offer, a partner with a link, and their API clients."""

    brand: Brand
    partner: Partner
    offer: Offer
    link: Link
    brand_api: Api
    partner_api: Api
    admin_api: Api

    @property
    def token(self) -> str:
        return self.brand.postback_token


def make_shop(session: Session, client: Any, *, name: str = "Acme Shop", currency: str = "USD", **offer: Any) -> Shop:
    """Build a Shop; `offer` goes to make_offer (events, caps, hold_days, ...)."""
    brand = make_brand(session, name=name, currency=currency)
    partner = make_partner(session, name=f"Partner of {name}")
    the_offer = make_offer(session, brand=brand, **offer)
    return Shop(
        brand=brand,
        partner=partner,
        offer=the_offer,
        link=make_link(session, offer=the_offer, partner=partner),
        brand_api=Api(client, make_key(session, role="brand", brand=brand)),
        partner_api=Api(client, make_key(session, role="partner", partner=partner)),
        admin_api=Api(client, make_key(session, role="admin")),
    )


def postback(client: Any, **params: Any) -> Any:
    """Send a GET postback with `params` (None values are left out)."""
    return client.get("/postback", query_string={k: v for k, v in params.items() if v is not None})


def conversions(session: Session, **where: Any) -> list[Conversion]:
    """Return the conversions matching column values, by id."""
    session.expire_all()
    query = select(Conversion).order_by(Conversion.id)
    for name, value in where.items():
        query = query.where(getattr(Conversion, name) == value)
    return list(session.scalars(query))


def log_lines(session: Session) -> list[PostbackLog]:
    """Return every postback log line, oldest first."""
    return list(session.scalars(select(PostbackLog).order_by(PostbackLog.id)))


REVSHARE = {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}
CPL = {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"}


@pytest.fixture
def shop(session: Session, client: Any) -> Shop:
    """A USD shop whose offer pays 10 %/15 % of `sale` and 2.00/3.00 per `lead`."""
    return make_shop(session, client, events=[REVSHARE, CPL])


@pytest.fixture
def signals() -> Iterator[list[dict[str, Any]]]:
    """Record every status_changed signal sent during the test."""
    seen: list[dict[str, Any]] = []

    def receiver(_sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    status_changed.connect(receiver)
    yield seen
    status_changed.disconnect(receiver)


@pytest.fixture
def checked(session: Session) -> Iterator[None]:
    """Assert the conversion invariants after the test (tests/conversions/invariants.py)."""
    yield
    check_invariants(session, SECRET)
