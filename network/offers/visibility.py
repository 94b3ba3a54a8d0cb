"""Who may see and change an offer: the reads every other part of the offers service starts from."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from network.auth import Principal, Role, require
from network.db import DEFAULT_PAGE, paged
from network.errors import NotFound
from network.offers.models import AccessStatus, Offer, OfferAccess, OfferStatus, Visibility


def _load(session: Session, offer_id: int) -> Offer | None:
    return session.scalars(
        select(Offer).where(Offer.id == offer_id).options(selectinload(Offer.events), selectinload(Offer.caps))
    ).one_or_none()


def partner_access(session: Session, offer: Offer, partner_id: int) -> OfferAccess | None:
    """Return the partner's application or invitation for an offer, if any."""
    return session.scalars(
        select(OfferAccess).where(OfferAccess.offer_id == offer.id, OfferAccess.partner_id == partner_id)
    ).one_or_none()


def partner_may_see(session: Session, offer: Offer, partner_id: int) -> bool:
    """Return whether a partner may see an offer: active and public/approval, or private and invited."""
    if offer.status != OfferStatus.ACTIVE.value:
        access = partner_access(session, offer, partner_id)
        return access is not None and access.status == AccessStatus.APPROVED.value
    if offer.visibility != Visibility.PRIVATE.value:
        return True
    access = partner_access(session, offer, partner_id)
    return access is not None and access.status == AccessStatus.APPROVED.value


def get_offer(session: Session, principal: Principal, offer_id: int) -> Offer:
    """Return an offer the principal may see, or 404."""
    offer = _load(session, offer_id)
    if offer is None:
        raise NotFound("offer not found")
    role = principal.role
    if role in (Role.ADMIN, Role.FINANCE):
        return offer
    if role is Role.BRAND and offer.brand_id == principal.brand_id:
        return offer
    if (
        role is Role.PARTNER
        and principal.partner_id is not None
        and partner_may_see(session, offer, principal.partner_id)
    ):
        return offer
    raise NotFound("offer not found")


def own_offer(session: Session, principal: Principal, offer_id: int) -> Offer:
    """Return an offer the principal may change (admin, or the brand that owns it): 403 for other roles, else 404."""
    require(principal, Role.ADMIN, Role.BRAND)
    return get_offer(session, principal, offer_id)


def list_offers(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    brand_id: int | None = None,
    visibility: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[Offer]:
    """Return one page of the offers the principal may see."""
    query = select(Offer).options(selectinload(Offer.events), selectinload(Offer.caps))
    if principal.role is Role.BRAND:
        query = query.where(Offer.brand_id == principal.brand_id)
    elif principal.role is Role.PARTNER:
        invited = select(OfferAccess.offer_id).where(
            OfferAccess.partner_id == principal.partner_id, OfferAccess.status == AccessStatus.APPROVED.value
        )
        query = query.where(
            or_(
                (Offer.status == OfferStatus.ACTIVE.value) & (Offer.visibility != Visibility.PRIVATE.value),
                Offer.id.in_(invited),
            )
        )
    if brand_id is not None:
        query = query.where(Offer.brand_id == brand_id)
    if status is not None:
        query = query.where(Offer.status == status)
    if visibility is not None:
        query = query.where(Offer.visibility == visibility)
    return list(session.scalars(paged(query, Offer.id, limit=limit, after=after)))
