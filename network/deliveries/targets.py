"""Where a partner's postbacks go: its global URL, its per-offer URLs, and the URLs disabled after a 410 Gone."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network import netguard
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.db import DEFAULT_PAGE, insert_new, paged
from network.deliveries.models import GLOBAL, OfferPostback, PostbackDisable
from network.errors import Conflict, NotFound, ValidationError
from network.offers import service as offers
from network.partners import service as partners
from network.partners.models import Partner

log = logging.getLogger(__name__)


def url_hash(template: str) -> str:
    """Return the key a URL template is disabled under."""
    return hashlib.sha256(template.encode("utf-8", "surrogateescape")).hexdigest()


def target_of(offer_postback: OfferPostback | None) -> str:
    """Return the target name of the partner's global URL (None) or of a per-offer URL."""
    return GLOBAL if offer_postback is None else f"offer:{offer_postback.id}"


def resolve_target(session: Session, partner: Partner, target: str) -> tuple[str, str] | None:
    """Return (template, method) a target calls now, or None when it has no URL any more."""
    if target == GLOBAL:
        return (partner.postback_url, partner.postback_method or "get") if partner.postback_url else None
    kind, _, ident = target.partition(":")
    if kind != "offer" or not ident.isdigit():
        return None
    row = session.get(OfferPostback, int(ident))
    if row is None or row.partner_id != partner.id:
        return None
    return row.url, row.method


def find_disable(session: Session, partner_id: int, target: str, template: str) -> PostbackDisable | None:
    """Return the record that disabled this URL of this target, if it is disabled."""
    return session.scalars(
        select(PostbackDisable).where(
            PostbackDisable.partner_id == partner_id,
            PostbackDisable.target == target,
            PostbackDisable.url_hash == url_hash(template),
        )
    ).one_or_none()


def disable_url(
    session: Session, *, partner_id: int, target: str, template: str, reason: str, delivery_id: int | None
) -> PostbackDisable:
    """Stop calling a URL (it answered 410 Gone), recording why; idempotent, also when two 410s race."""
    # ON CONFLICT DO NOTHING, not check-then-insert: a concurrent job disabling the same URL must
    # not turn this one's unique violation into a rollback of its attempt record.
    redacted = netguard.redact_url(template)
    insert = (
        insert_new(session, PostbackDisable, keys=["partner_id", "target", "url_hash"])
        .values(
            partner_id=partner_id,
            target=target,
            url_hash=url_hash(template),
            url=redacted,
            reason=reason,
            delivery_id=delivery_id,
            disabled_at=now_utc(),
        )
        .returning(PostbackDisable.id)
    )
    for _attempt in range(3):
        existing = find_disable(session, partner_id, target, template)
        if existing is not None:
            return existing
        # Nothing inserted: a concurrent job's row (committed: the INSERT waited for it) is found
        # by the next look; in the unlikely case it was enabled again meanwhile, insert again.
        if session.execute(insert).scalar() is not None:
            log.warning("postback URL disabled: partner=%s target=%s url=%s (%s)", partner_id, target, redacted, reason)
    raise RuntimeError("a disabled postback URL kept being enabled again while it was being disabled")


def partner_for_change(session: Session, principal: Principal, partner_id: int) -> Partner:
    """Return a partner whose postback settings the principal may change (the partner itself, admin)."""
    partner = partners.get_partner(session, principal, partner_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    return partner


def check_url(
    url: str,
    *,
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
) -> str:
    """Return a per-offer postback URL template if it may be called, else raise naming the problem."""
    try:
        return netguard.validate_postback_template(
            url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver
        )
    except netguard.UnsafeURL as exc:
        raise ValidationError(f"url: {exc}", field="url", code="unsafe_url") from exc


def list_offer_postbacks(
    session: Session, principal: Principal, partner_id: int, *, limit: int = DEFAULT_PAGE, after: int | None = None
) -> list[OfferPostback]:
    """Return a page of a partner's per-offer postback URLs, by id."""
    partners.get_partner(session, principal, partner_id)
    query = select(OfferPostback).where(OfferPostback.partner_id == partner_id)
    return list(session.scalars(paged(query, OfferPostback.id, limit=limit, after=after)))


def get_offer_postback(session: Session, principal: Principal, partner_id: int, postback_id: int) -> OfferPostback:
    """Return one per-offer postback URL of a partner, or 404."""
    partners.get_partner(session, principal, partner_id)
    row = session.get(OfferPostback, postback_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound("offer postback not found")
    return row


def create_offer_postback(
    session: Session,
    principal: Principal,
    partner_id: int,
    *,
    offer_id: int,
    url: str,
    method: str = "get",
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
) -> OfferPostback:
    """Set a partner's postback URL for one offer it may run (the partner itself, admin)."""
    partner = partner_for_change(session, principal, partner_id)
    offer = offers.get_offer(session, principal, offer_id)
    if not offers.partner_may_run(session, offer, partner.id):
        raise ValidationError("offer_id: the partner may not run this offer", field="offer_id")
    template = check_url(url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver)
    existing = session.scalars(
        select(OfferPostback).where(OfferPostback.partner_id == partner.id, OfferPostback.offer_id == offer.id)
    ).one_or_none()
    if existing is not None:
        raise Conflict(f"the partner already has postback URL {existing.id} for this offer; change that one")
    row = OfferPostback(partner_id=partner.id, offer_id=offer.id, url=template, method=method)
    session.add(row)
    session.flush()
    return row


def update_offer_postback(
    session: Session,
    principal: Principal,
    partner_id: int,
    postback_id: int,
    *,
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
    url: str | None = None,
    method: str | None = None,
) -> OfferPostback:
    """Change a per-offer postback URL or its method; a new URL is validated again."""
    row = get_offer_postback(session, principal, partner_id, postback_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    if url is not None:
        row.url = check_url(url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver)
    if method is not None:
        row.method = method
    session.flush()
    return row


def delete_offer_postback(session: Session, principal: Principal, partner_id: int, postback_id: int) -> None:
    """Remove a per-offer postback URL; its pending deliveries fail (no URL) when their turn comes."""
    row = get_offer_postback(session, principal, partner_id, postback_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    session.delete(row)
    session.flush()


# ---- disabled URLs -------------------------------------------------------------------------------


def list_disables(
    session: Session, principal: Principal, partner_id: int, *, limit: int = DEFAULT_PAGE, after: int | None = None
) -> list[PostbackDisable]:
    """Return a page of the partner's postback URLs the network stopped calling, and why, by id."""
    partners.get_partner(session, principal, partner_id)
    query = select(PostbackDisable).where(PostbackDisable.partner_id == partner_id)
    return list(session.scalars(paged(query, PostbackDisable.id, limit=limit, after=after)))


def enable(session: Session, principal: Principal, partner_id: int, disable_id: int) -> None:
    """Call a disabled URL again (the partner fixed its endpoint)."""
    partner_for_change(session, principal, partner_id)
    row = session.get(PostbackDisable, disable_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound("disabled postback URL not found")
    session.delete(row)
    session.flush()
