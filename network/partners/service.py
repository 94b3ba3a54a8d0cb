"""Partners: onboarding, status and postback settings."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network import netguard
from network.auth import Principal, Role, require
from network.errors import Forbidden, NotFound, ValidationError
from network.partners.models import Partner, PartnerStatus


def create_partner(
    session: Session,
    principal: Principal,
    *,
    name: str,
    email: str | None = None,
    status: str = PartnerStatus.ACTIVE.value,
) -> Partner:
    """Onboard a partner (admin)."""
    require(principal, Role.ADMIN)
    partner = Partner(
        name=name, email=email, status=PartnerStatus(status).value, postback_secret="whsec_" + secrets.token_urlsafe(24)
    )
    session.add(partner)
    session.flush()
    return partner


def get_partner(session: Session, principal: Principal, partner_id: int) -> Partner:
    """Return a partner the principal may see, or 404 (brands and other partners see none)."""
    partner = session.get(Partner, partner_id)
    visible = principal.role in (Role.ADMIN, Role.FINANCE) or (
        principal.role is Role.PARTNER and principal.partner_id == partner_id
    )
    if partner is None or not visible:
        raise NotFound("partner not found")
    return partner


def list_partners(session: Session, principal: Principal, *, status: str | None = None) -> list[Partner]:
    """Return the partners the principal may see."""
    if principal.role is Role.BRAND:
        raise Forbidden("brands may not list partners")
    query = select(Partner).order_by(Partner.id)
    if principal.role is Role.PARTNER:
        query = query.where(Partner.id == principal.partner_id)
    if status is not None:
        query = query.where(Partner.status == status)
    return list(session.scalars(query))


def set_status(session: Session, principal: Principal, partner_id: int, status: str) -> Partner:
    """Activate, suspend or return a partner to pending (admin)."""
    partner = get_partner(session, principal, partner_id)
    require(principal, Role.ADMIN)
    partner.status = PartnerStatus(status).value
    return partner


def update_partner(
    session: Session,
    principal: Principal,
    partner_id: int,
    *,
    allow_http: bool,
    allowed_networks: Sequence[Any],
    **changes: Any,
) -> Partner:
    """Change a partner's profile or postback settings (the partner itself, or admin)."""
    partner = get_partner(session, principal, partner_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    if changes.get("postback_url"):
        changes["postback_url"] = check_postback_url(
            changes["postback_url"], allow_http=allow_http, allowed_networks=allowed_networks
        )
    for name, value in changes.items():
        setattr(partner, name, value)
    return partner


def check_postback_url(url: str, *, allow_http: bool, allowed_networks: Sequence[Any]) -> str:
    """Return a postback URL template if it may be called, else raise naming the problem."""
    try:
        return netguard.validate_postback_template(url, allow_http=allow_http, allowed_networks=allowed_networks)
    except netguard.UnsafeURL as exc:
        raise ValidationError(f"postback_url: {exc}", field="postback_url", code="unsafe_url") from exc


def rotate_postback_secret(session: Session, principal: Principal, partner_id: int) -> Partner:
    """Replace the secret that signs the partner's POST deliveries."""
    partner = get_partner(session, principal, partner_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    partner.postback_secret = "whsec_" + secrets.token_urlsafe(24)
    return partner
