"""Partners: onboarding, status and postback settings."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network import money, netguard
from network.auth import Principal, Role, require
from network.db import DEFAULT_PAGE, paged
from network.errors import NotFound, ValidationError
from network.partners.models import Partner, PartnerStatus

#: What a partner may change about itself; an admin may also set the payout threshold.
SELF_FIELDS = frozenset({"name", "email", "postback_url", "postback_method"})
ADMIN_FIELDS = SELF_FIELDS | {"payout_min_amount"}


def _new_secret() -> str:
    # Standard base64 after the prefix, as Standard Webhooks libraries decode it.
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


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
    partner = Partner(name=name, email=email, status=PartnerStatus(status).value, postback_secret=_new_secret())
    session.add(partner)
    session.flush()
    return partner


def get_partner(session: Session, principal: Principal, partner_id: int) -> Partner:
    """Return a partner the principal may see (admin, finance, the partner itself), or 404; brands 403."""
    require(principal, Role.ADMIN, Role.FINANCE, Role.PARTNER)
    partner = session.get(Partner, partner_id)
    if partner is None or (principal.role is Role.PARTNER and principal.partner_id != partner.id):
        raise NotFound("partner not found")
    return partner


def list_partners(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[Partner]:
    """Return one page of the partners the principal may see (a partner sees itself; brands 403)."""
    require(principal, Role.ADMIN, Role.FINANCE, Role.PARTNER)
    query = select(Partner)
    if principal.role is Role.PARTNER:
        query = query.where(Partner.id == principal.partner_id)
    if status is not None:
        query = query.where(Partner.status == status)
    return list(session.scalars(paged(query, Partner.id, limit=limit, after=after)))


def set_status(session: Session, principal: Principal, partner_id: int, status: str) -> Partner:
    """Activate, suspend, reject or return a partner to pending (admin)."""
    require(principal, Role.ADMIN)
    partner = get_partner(session, principal, partner_id)
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
    require(principal, Role.ADMIN, Role.PARTNER)
    partner = get_partner(session, principal, partner_id)
    allowed = ADMIN_FIELDS if principal.role is Role.ADMIN else SELF_FIELDS
    refused = sorted(set(changes) - allowed)
    if refused:
        name = refused[0]
        why = "may only be set by an admin" if name in ADMIN_FIELDS else "cannot be changed"
        raise ValidationError(f"{name} {why}", field=name)
    if "postback_url" in changes:
        url = changes["postback_url"]
        changes["postback_url"] = (
            check_postback_url(url, allow_http=allow_http, allowed_networks=allowed_networks)
            if url and url.strip()
            else None
        )
    if changes.get("payout_min_amount") is not None:
        try:
            # Applied in each payout currency; checked here as a plain two-decimal amount.
            money.parse_amount(changes["payout_min_amount"], "USD")
        except money.MoneyError as exc:
            raise ValidationError(f"payout_min_amount: {exc}", field="payout_min_amount") from exc
    for name, value in changes.items():
        setattr(partner, name, value)
    return partner


def check_postback_url(url: str, *, allow_http: bool, allowed_networks: Sequence[Any]) -> str:
    """Return a postback URL template if it may be called, else raise naming the problem."""
    try:
        return netguard.validate_postback_template(url, allow_http=allow_http, allowed_networks=allowed_networks)
    except netguard.UnsafeURL as exc:
        raise ValidationError(f"postback_url: {exc}", field="postback_url", code="unsafe_url") from exc


def postback_secret(session: Session, principal: Principal, partner_id: int) -> str:
    """Return the secret that signs the partner's POST deliveries (the partner itself, admin)."""
    require(principal, Role.ADMIN, Role.PARTNER)
    partner = get_partner(session, principal, partner_id)
    if partner.postback_secret is None:
        partner.postback_secret = _new_secret()
    return partner.postback_secret


def rotate_postback_secret(session: Session, principal: Principal, partner_id: int) -> Partner:
    """Replace the secret that signs the partner's POST deliveries."""
    require(principal, Role.ADMIN, Role.PARTNER)
    partner = get_partner(session, principal, partner_id)
    partner.postback_secret = _new_secret()
    return partner
