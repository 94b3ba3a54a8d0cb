"""Builders for tests: keyword-only, with defaults, going through the services."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from network.accounts import service as accounts
from network.accounts.models import Brand
from network.auth import SYSTEM, Role
from network.offers import service as offers
from network.offers.models import Offer
from network.partners import service as partners
from network.partners.models import Partner

#: The offer of SPEC §9, exactly as written there.
SPEC_OFFER: dict[str, Any] = {
    "name": "Spring sale",
    "currency": "USD",
    "visibility": "public",
    "destination_url": "https://shop.example/landing?cid={click_id}&s={sub1}",
    "allowed_domains": ["shop.example"],
    "conversion_window_days": 30,
    "hold_days": 0,
    "countries": [],
    "fallback_url": "https://shop.example/",
    "caps": [{"metric": "conversions", "period": "day", "limit": 1000, "scope": "offer"}],
    "events": [
        {"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"},
        {"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"},
    ],
}


def make_brand(session: Session, *, name: str = "Acme Shop", currency: str = "USD") -> Brand:
    return accounts.create_brand(session, SYSTEM, name=name, currency=currency)


def make_partner(
    session: Session, *, name: str = "Deal Blog", status: str = "active", email: str | None = None
) -> Partner:
    return partners.create_partner(session, SYSTEM, name=name, email=email, status=status)


def make_key(session: Session, *, role: str | Role, brand: Brand | None = None, partner: Partner | None = None) -> str:
    _row, key = accounts.create_key(
        session, role=role, brand_id=brand.id if brand else None, partner_id=partner.id if partner else None
    )
    return key


def cpa_event(key: str = "sale", payout: str = "5.00", revenue: str = "8.00", model: str = "cpa") -> dict[str, Any]:
    return {"key": key, "model": model, "payout": payout, "revenue": revenue}


def make_offer(
    session: Session,
    *,
    brand: Brand,
    name: str = "Spring sale",
    status: str = "active",
    visibility: str = "public",
    currency: str | None = None,
    events: list[dict[str, Any]] | None = None,
    destination_url: str = "https://shop.example/landing?cid={click_id}&s={sub1}",
    allowed_domains: list[str] | None = None,
    **fields: Any,
) -> Offer:
    data: dict[str, Any] = {
        "brand_id": brand.id,
        "name": name,
        "visibility": visibility,
        "destination_url": destination_url,
        "allowed_domains": ["shop.example"] if allowed_domains is None else allowed_domains,
        "events": events or [cpa_event()],
        **fields,
    }
    if currency:
        data["currency"] = currency
    offer = offers.create_offer(session, SYSTEM, data)
    if status != "draft":
        offers.change_status(session, SYSTEM, offer.id, "activate")
    if status in ("paused", "archived"):
        offers.change_status(session, SYSTEM, offer.id, {"paused": "pause", "archived": "archive"}[status])
    session.flush()
    return offer


class Api:
    """A test client that sends one API key."""

    def __init__(self, client: Any, key: str | None) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return getattr(self.client, method)(path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._call("get", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self._call("post", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self._call("patch", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self._call("put", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self._call("delete", path, **kwargs)
