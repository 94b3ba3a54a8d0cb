"""Payouts as finance and partners see them: reading, finance's decisions (approve, hold, release,
cancel) and Stripe onboarding. Building is in build.py, settling in settlement.py and phases.py,
Stripe's webhooks in stripe_webhooks.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from network import money
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.db import paged, where_given
from network.errors import Conflict, DomainError, Forbidden, NotFound
from network.partners import service as partner_service
from network.payouts import attachment, ledger, rules
from network.payouts.gateway import GatewayError, GatewayUnsupported, PayoutGateway
from network.payouts.models import Payout, PayoutStatus
from network.payouts.tables import chunks, partners, payouts


class GatewayUnavailable(DomainError):
    """The payment provider could not be reached or refused the request."""

    status = 502
    code = "gateway_error"


def get_payout(session: Session, principal: Principal, payout_id: int) -> Payout:
    """Return a payout the principal may see (finance, admin; a partner its own), or 404."""
    payout = session.get(Payout, payout_id)
    visible = principal.role in (Role.FINANCE, Role.ADMIN) or (
        principal.role is Role.PARTNER and payout is not None and payout.partner_id == principal.partner_id
    )
    if payout is None or not visible:
        raise NotFound("payout not found")
    return payout


def list_payouts(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    partner_id: int | None = None,
    run_id: int | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[Payout]:
    """Return a page of payouts (finance, admin: all; a partner: its own), by id."""
    if principal.role is Role.BRAND:
        raise Forbidden("brands may not read payouts")
    query = select(Payout)
    if principal.role is Role.PARTNER:
        query = query.where(Payout.partner_id == principal.partner_id)
    query = where_given(query, (Payout.partner_id, partner_id), (Payout.status, status), (Payout.run_id, run_id))
    return list(session.scalars(paged(query, Payout.id, limit=limit, after=after)))


def payouts_by_id(session: Session, ids: Sequence[int]) -> list[Payout]:
    """Return payouts by id, in id order."""
    found: list[Payout] = []
    for chunk in chunks(list(ids)):
        found.extend(session.scalars(select(Payout).where(Payout.id.in_(chunk))))
    return sorted(found, key=lambda p: p.id)


def decide(session: Session, principal: Principal, payout_id: int, action: str, *, note: str | None = None) -> Payout:
    """Approve, hold, release (unhold) or cancel a payout (finance, admin); 409 when its status does not allow it."""
    require(principal, Role.FINANCE, Role.ADMIN)
    payout = get_payout(session, principal, payout_id)
    current = payout.status
    target = rules.action_target(action, current)
    if target is None:
        raise Conflict(f"cannot {action} a payout that is {current}", code="invalid_transition")
    now = now_utc()
    values: dict[str, Any] = {"status": target}
    if action == "approve":
        values.update(approved_at=now, approved_by=principal.label)
    else:
        values.update(decided_at=now, decided_by=principal.label)
    if note is not None:
        values["note"] = note
    result = session.execute(
        update(payouts).where(payouts.c.id == payout_id, payouts.c.status == current).values(**values)
    )
    changed = result.rowcount  # type: ignore[attr-defined]
    if changed != 1:
        raise Conflict(f"the payout changed while you decided; it is no longer {current}", code="invalid_transition")
    if target == PayoutStatus.CANCELED:
        attachment.release(session, payout_id, now)
    ledger.audit(
        session,
        actor=principal.label,
        action=f"payout.{target}",
        object_type="payout",
        object_id=payout_id,
        details={"from": current, "amount": money.format_amount(payout.amount_minor, payout.currency), "note": note},
        at=now,
    )
    session.refresh(payout)
    return payout


@dataclass(frozen=True, slots=True)
class Onboarding:
    """What Stripe onboarding needs to know of a partner, read before Stripe is called."""

    partner_id: int
    known: str | None
    email: str | None
    payouts_enabled: bool


def start_onboarding(session: Session, principal: Principal, partner_id: int) -> Onboarding:
    """Read what onboarding needs; the caller then ends its transaction before Stripe is called.

    No transaction may stay open over Stripe's calls (each up to the gateway's timeout): on SQLite
    the request's, open since its API key was read, holds the database's only write lock, and every
    other writer would wait. The views call `web.commit_before_calling_out()` between the two steps.
    """
    partner = partner_service.get_partner(session, principal, partner_id)
    require(principal, Role.PARTNER, Role.ADMIN)
    return Onboarding(partner_id, partner.stripe_account_id, partner.email, partner.stripe_payouts_enabled)


def stripe_onboarding(
    session: Session,
    principal: Principal,
    start: Onboarding,
    *,
    gateway: PayoutGateway,
    refresh_url: str,
    return_url: str,
) -> dict[str, Any]:
    """Create the partner's Express account when it has none and return a one-time onboarding link.

    The account is stored after both calls, in a new transaction (see `start_onboarding`).
    """
    partner_id, known, email, payouts_enabled = start.partner_id, start.known, start.email, start.payouts_enabled
    try:
        # Idempotent at Stripe (keyed by partner): a retry after a failed call gets the same account.
        account_id = known or gateway.create_account(partner_id=str(partner_id), email=email)
        url = gateway.onboarding_link(account_id=account_id, refresh_url=refresh_url, return_url=return_url)
    except GatewayUnsupported as exc:
        raise Conflict("Stripe is not configured: payouts are manual", code="stripe_not_configured") from exc
    except GatewayError as exc:
        raise GatewayUnavailable(f"Stripe did not answer as expected: {exc}") from exc
    if known is None:
        stored = session.execute(
            update(partners)
            .where(partners.c.id == partner_id, partners.c.stripe_account_id.is_(None))
            .values(stripe_account_id=account_id)
        )
        if stored.rowcount == 1:  # type: ignore[attr-defined]
            ledger.audit(
                session,
                actor=principal.label,
                action="stripe.account_created",
                object_type="partner",
                object_id=partner_id,
                details={"account": account_id},
            )
        elif session.scalar(select(partners.c.stripe_account_id).where(partners.c.id == partner_id)) != account_id:
            # Another request stored the partner's account meanwhile: the same one, as Stripe keys
            # the creation by partner, unless the e-mail changed between the two.
            raise Conflict(
                "another onboarding of this partner stored a different Stripe account; ask again",
                code="onboarding_conflict",
            )
    return {"account_id": account_id, "url": url, "payouts_enabled": payouts_enabled}
