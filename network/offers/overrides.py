"""Per-partner payouts: one partner's payout for one event of an offer, never a loss unless allowed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.auth import Principal
from network.db import DEFAULT_PAGE, paged
from network.errors import NotFound, ValidationError
from network.offers.models import PartnerOverride
from network.offers.validation import check_override_loss, override_figures
from network.offers.visibility import own_offer
from network.partners.models import Partner


def set_override(session: Session, principal: Principal, offer_id: int, data: dict[str, Any]) -> PartnerOverride:
    """Set one partner's payout for one event of an offer (brand of the offer, or admin)."""
    offer = own_offer(session, principal, offer_id)
    event = next((e for e in offer.events if e.key == data["event"]), None)
    if event is None:
        raise ValidationError(f"unknown event {data['event']!r}", field="event")
    if session.get(Partner, data["partner_id"]) is None:
        raise ValidationError("unknown partner", field="partner_id")
    payout, percent = override_figures(event, data, offer.currency)
    check_override_loss(offer, event, payout, percent)
    override = session.scalars(
        select(PartnerOverride).where(
            PartnerOverride.event_id == event.id, PartnerOverride.partner_id == data["partner_id"]
        )
    ).one_or_none()
    if override is None:
        override = PartnerOverride(offer_id=offer.id, event_id=event.id, partner_id=data["partner_id"])
        session.add(override)
    override.payout_minor = payout
    override.payout_percent = percent
    session.flush()
    return override


def list_overrides(
    session: Session,
    principal: Principal,
    offer_id: int,
    *,
    partner_id: int | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[PartnerOverride]:
    """Return one page of an offer's per-partner overrides (brand of the offer, admin)."""
    offer = own_offer(session, principal, offer_id)
    query = select(PartnerOverride).where(PartnerOverride.offer_id == offer.id)
    if partner_id is not None:
        query = query.where(PartnerOverride.partner_id == partner_id)
    return list(session.scalars(paged(query, PartnerOverride.id, limit=limit, after=after)))


def delete_override(session: Session, principal: Principal, offer_id: int, override_id: int) -> None:
    """Remove a per-partner override (brand of the offer, admin)."""
    offer = own_offer(session, principal, offer_id)
    override = session.get(PartnerOverride, override_id)
    if override is None or override.offer_id != offer.id:
        raise NotFound("override not found")
    session.delete(override)
    session.flush()
