"""Fixtures for partner postback tests: local partner endpoints, conversions, the delivery job."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from network.clock import now_utc
from network.config import Settings
from network.conversions.models import Conversion
from network.conversions.signals import status_changed
from network.db import Database
from network.deliveries import jobs
from network.deliveries.models import PostbackAttempt, PostbackDelivery
from network.deliveries.sender import Transport
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click, Link
from tests.conftest import make_settings
from tests.deliveries.endpoints import Endpoint
from tests.factories import make_brand, make_offer, make_partner

#: The one address local endpoints listen on, exempted as POSTBACK_ALLOWED_NETWORKS would be.
LOCAL = (ipaddress.ip_network("127.0.0.1/32"),)
CODEC = ClickIdCodec("test-secret-key")
_codes = count(1)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings that let postbacks reach this machine's 127.0.0.1 (and nothing else local) over http."""
    return make_settings(database_url, postback_allow_http=True, postback_allowed_networks=LOCAL)


@pytest.fixture
def endpoints() -> Iterator[Callable[..., Endpoint]]:
    """Yield a factory of local partner endpoints, closed after the test."""
    made: list[Endpoint] = []

    def make(host: str = "127.0.0.1", behaviour: Any = None) -> Endpoint:
        endpoint = Endpoint(host, behaviour)
        made.append(endpoint)
        return endpoint

    yield make
    for endpoint in made:
        endpoint.close()


@pytest.fixture
def endpoint(endpoints: Callable[..., Endpoint]) -> Endpoint:
    """One local partner endpoint answering 200."""
    return endpoints()


def fast(**overrides: Any) -> Transport:
    """Return the local transport with short timeouts (the production ones are 2 s and 10 s)."""
    values: dict[str, Any] = {
        "allow_http": True,
        "allowed_networks": LOCAL,
        "connect_timeout": 0.5,
        "read_timeout": 0.5,
    }
    values.update(overrides)
    return Transport(**values)


def deliver(database: Database, settings: Settings, **options: Any) -> int:
    """Run the delivery job once, on the local transport unless told otherwise."""
    options.setdefault("transport", fast())
    return jobs.deliver_due(database, settings, **options)


@dataclass
class Scene:
    """A brand's active offer, a partner with a link to it: what a conversion needs."""

    brand_id: int
    partner_id: int
    offer_id: int
    event_id: int
    link_id: int


def make_scene(
    session: Session,
    *,
    postback_url: str | None = None,
    postback_method: str = "get",
    share_txn_id: bool = False,
    link_subs: dict[str, str] | None = None,
) -> Scene:
    """Build a brand, a partner (with its global URL set directly: tests of saving go through the API)."""
    brand = make_brand(session)
    brand.share_txn_id = share_txn_id
    partner = make_partner(session)
    partner.postback_url = postback_url
    partner.postback_method = postback_method
    offer = make_offer(session, brand=brand)
    link = Link(code=f"dl{next(_codes)}o{offer.id}", offer_id=offer.id, partner_id=partner.id, **(link_subs or {}))
    session.add(link)
    session.flush()
    return Scene(brand.id, partner.id, offer.id, offer.events[0].id, link.id)


def make_conversion(
    session: Session,
    scene: Scene,
    *,
    status: str = "approved",
    txn_id: str | None = None,
    payout_minor: int = 500,
    click_subs: dict[str, str] | None = None,
    click_row: bool = True,
) -> Conversion:
    """Record a conversion and send status_changed exactly as conversions does on creation."""
    at = now_utc()
    click_id = CODEC.issue(scene.link_id, at - dt.timedelta(minutes=5))
    if click_row:
        session.add(
            Click(
                id=click_id,
                link_id=scene.link_id,
                offer_id=scene.offer_id,
                partner_id=scene.partner_id,
                created_at=at - dt.timedelta(minutes=5),
                **(click_subs or {}),
            )
        )
    conversion = Conversion(
        offer_id=scene.offer_id,
        event_id=scene.event_id,
        brand_id=scene.brand_id,
        partner_id=scene.partner_id,
        link_id=scene.link_id,
        click_id=click_id,
        clicked_at=at - dt.timedelta(minutes=5),
        txn_id=txn_id,
        status=status,
        flags=[],
        currency="USD",
        payout_minor=payout_minor,
        revenue_minor=payout_minor * 2,
        created_at=at,
        status_changed_at=at,
    )
    session.add(conversion)
    session.flush()
    status_changed.send(session=session, conversion=conversion, old_status=None, new_status=status, at=at, reason=None)
    return conversion


def change_status(session: Session, conversion: Conversion, status: str) -> None:
    """Change a conversion's status and send status_changed as conversions does."""
    old, at = conversion.status, now_utc()
    conversion.status = status
    conversion.status_changed_at = at
    session.flush()
    status_changed.send(session=session, conversion=conversion, old_status=old, new_status=status, at=at, reason=None)


def deliveries(session: Session, **where: Any) -> list[PostbackDelivery]:
    """Return the outbox rows matching column values, by id, as stored now."""
    query = select(PostbackDelivery).order_by(PostbackDelivery.id).execution_options(populate_existing=True)
    for name, value in where.items():
        query = query.where(getattr(PostbackDelivery, name) == value)
    return list(session.scalars(query))


def attempts(session: Session, delivery_id: int) -> list[PostbackAttempt]:
    """Return a delivery's attempts, oldest first."""
    query = select(PostbackAttempt).where(PostbackAttempt.delivery_id == delivery_id).order_by(PostbackAttempt.id)
    return list(session.scalars(query.execution_options(populate_existing=True)))
