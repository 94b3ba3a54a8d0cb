"""Partners' access to offers: applications to approval-only offers, the brand's decisions, invitations."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.clock import now_utc
from network.db import DEFAULT_PAGE, paged
from network.errors import Conflict, NotFound, ValidationError
from network.offers.models import AccessStatus, OfferAccess, Visibility
from network.offers.visibility import get_offer, own_offer, partner_access
from network.partners.models import Partner


def apply_to_offer(session: Session, principal: Principal, offer_id: int, note: str | None = None) -> OfferAccess:
    """Apply, as a partner, to run an approval-only offer."""
    require(principal, Role.PARTNER)
    assert principal.partner_id is not None
    offer = get_offer(session, principal, offer_id)
    if offer.visibility == Visibility.PUBLIC.value:
        raise Conflict("this offer is public: no application is needed", code="no_application_needed")
    existing = partner_access(session, offer, principal.partner_id)
    if existing is not None:
        if existing.status == AccessStatus.REJECTED.value:
            raise Conflict("your application to this offer was rejected", code="application_rejected")
        return existing
    access = OfferAccess(
        offer_id=offer.id,
        partner_id=principal.partner_id,
        kind="application",
        status=AccessStatus.PENDING.value,
        note=note,
    )
    session.add(access)
    session.flush()
    return access


def partner_applications(session: Session, principal: Principal, offer_ids: Sequence[int]) -> dict[int, OfferAccess]:
    """Return the partner's own applications and invitations to `offer_ids`, by offer id (one query)."""
    require(principal, Role.PARTNER)
    rows = session.scalars(
        select(OfferAccess).where(OfferAccess.partner_id == principal.partner_id, OfferAccess.offer_id.in_(offer_ids))
    )
    return {row.offer_id: row for row in rows}


def list_access(
    session: Session,
    principal: Principal,
    offer_id: int,
    *,
    status: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[OfferAccess]:
    """Return one page of an offer's applications and invitations (its brand, admin, finance); a partner its own."""
    offer = get_offer(session, principal, offer_id)
    query = select(OfferAccess).where(OfferAccess.offer_id == offer.id)
    if principal.role is Role.PARTNER:
        query = query.where(OfferAccess.partner_id == principal.partner_id)
    if status is not None:
        query = query.where(OfferAccess.status == status)
    return list(session.scalars(paged(query, OfferAccess.id, limit=limit, after=after)))


def decide_access(session: Session, principal: Principal, offer_id: int, access_id: int, decision: str) -> OfferAccess:
    """Approve or reject a partner's application (brand of the offer, or admin)."""
    offer = own_offer(session, principal, offer_id)
    access = session.get(OfferAccess, access_id)
    if access is None or access.offer_id != offer.id:
        raise NotFound("application not found")
    target = {"approve": AccessStatus.APPROVED, "reject": AccessStatus.REJECTED}[decision].value
    if access.status == target:
        return access
    access.status = target
    access.decided_at = now_utc()
    access.decided_by = principal.label
    return access


def invite(session: Session, principal: Principal, offer_id: int, partner_id: int) -> OfferAccess:
    """Invite a partner to a private (or approval-only) offer; the invitation is the approval."""
    offer = own_offer(session, principal, offer_id)
    if session.get(Partner, partner_id) is None:
        raise ValidationError("unknown partner", field="partner_id")
    access = partner_access(session, offer, partner_id)
    if access is None:
        access = OfferAccess(
            offer_id=offer.id, partner_id=partner_id, kind="invitation", status=AccessStatus.APPROVED.value
        )
        session.add(access)
    access.status = AccessStatus.APPROVED.value
    access.decided_at = now_utc()
    access.decided_by = principal.label
    session.flush()
    return access
