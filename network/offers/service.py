"""Offers: publishing, status, events, caps, overrides and which partners may run them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from network import money
from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.db import DEFAULT_PAGE, paged
from network.errors import Conflict, NotFound, ValidationError
from network.offers import rules
from network.offers.models import (
    AccessStatus,
    Cap,
    Offer,
    OfferAccess,
    OfferEvent,
    OfferStatus,
    PartnerOverride,
    Visibility,
)
from network.partners.models import Partner, PartnerStatus

_MONEY_FIELDS = {
    "click_payout": "click_payout_minor",
    "click_revenue": "click_revenue_minor",
    "impression_payout": "impression_payout_minor",
    "impression_revenue": "impression_revenue_minor",
}
#: Fields only an admin may set: the owner, loss leaders, the payout threshold.
ADMIN_FIELDS = ("brand_id", "allow_loss", "payout_min_amount")
_SCALARS = (
    "name", "destination_url", "visibility", "conversion_window_days", "hold_days", "min_seconds",
    "fallback_url",
)  # fmt: skip


def _amount(text: str, currency: str, field: str) -> int:
    try:
        return money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from exc


def _percent(text: str, field: str) -> int:
    try:
        return money.parse_percent(text)
    except money.MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from exc


# ---- reading -----------------------------------------------------------------------------------


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


def partner_may_run(session: Session, offer: Offer, partner_id: int) -> bool:
    """Return whether a partner may take links for and be paid on an offer."""
    partner = session.get(Partner, partner_id)
    active = partner is not None and partner.status == PartnerStatus.ACTIVE.value
    # The access row matters only when nothing else has decided already.
    needs_access = active and offer.status == OfferStatus.ACTIVE.value and offer.visibility != Visibility.PUBLIC.value
    access = partner_access(session, offer, partner_id) if needs_access else None
    approved = access is not None and access.status == AccessStatus.APPROVED.value
    return rules.may_run(
        partner_active=active, offer_status=offer.status, visibility=offer.visibility, approved=approved
    )


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


def _own_offer(session: Session, principal: Principal, offer_id: int) -> Offer:
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


def partner_views(
    session: Session, offers: Sequence[Offer], partner_id: int
) -> dict[int, tuple[bool, dict[int, PartnerOverride]]]:
    """Return, per offer id, whether the partner may run it and its payout overrides by event id (3 queries)."""
    ids = [offer.id for offer in offers]
    partner = session.get(Partner, partner_id)
    active = partner is not None and partner.status == PartnerStatus.ACTIVE.value
    approved = set(
        session.scalars(
            select(OfferAccess.offer_id).where(
                OfferAccess.partner_id == partner_id,
                OfferAccess.offer_id.in_(ids),
                OfferAccess.status == AccessStatus.APPROVED.value,
            )
        )
    )
    overrides: dict[int, dict[int, PartnerOverride]] = {offer_id: {} for offer_id in ids}
    for override in session.scalars(
        select(PartnerOverride).where(PartnerOverride.partner_id == partner_id, PartnerOverride.offer_id.in_(ids))
    ):
        overrides[override.offer_id][override.event_id] = override
    return {
        offer.id: (
            rules.may_run(
                partner_active=active,
                offer_status=offer.status,
                visibility=offer.visibility,
                approved=offer.id in approved,
            ),
            overrides[offer.id],
        )
        for offer in offers
    }


# ---- writing -----------------------------------------------------------------------------------


def _check_urls(data: dict[str, Any]) -> None:
    if "destination_url" in data:
        problem = rules.url_problem(data["destination_url"], macros=True)
        if problem:
            raise ValidationError(f"destination_url {problem}", field="destination_url")
    if data.get("fallback_url"):
        problem = rules.url_problem(data["fallback_url"], macros=False)
        if problem:
            raise ValidationError(f"fallback_url {problem}", field="fallback_url")


def _domains(values: Sequence[str]) -> list[str]:
    hosts = []
    for value in values:
        host = rules.normalize_host(value)
        if host is None:
            raise ValidationError(f"allowed_domains: {value!r} is not a hostname", field="allowed_domains")
        hosts.append(host)
    return sorted(set(hosts))


def _event_figures(data: dict[str, Any], currency: str, index: int) -> dict[str, int]:
    where = f"events[{index}]"
    model = data["model"]
    figures = {
        "payout_minor": _amount(data["payout"], currency, f"{where}.payout") if data.get("payout") else 0,
        "revenue_minor": _amount(data["revenue"], currency, f"{where}.revenue") if data.get("revenue") else 0,
        "payout_percent": _percent(data["payout_percent"], f"{where}.payout_percent")
        if data.get("payout_percent")
        else 0,
        "revenue_percent": _percent(data["revenue_percent"], f"{where}.revenue_percent")
        if data.get("revenue_percent")
        else 0,
    }
    problem = rules.shape_problem(rules.Figures(model=model, **figures))
    if problem:
        raise ValidationError(f"{where}.{problem[0]}: {problem[1]}", field=f"{where}.{problem[0]}")
    if model in ("revshare", "hybrid") and not data.get("payout_percent") and not data.get("revenue_percent"):
        raise ValidationError(f"{where}: {model} needs payout_percent and revenue_percent", field=f"{where}")
    return figures


def _check_loss(offer: Offer) -> None:
    if offer.allow_loss:
        return
    for index, event in enumerate(offer.events):
        figures = rules.Figures(
            event.model, event.payout_minor, event.revenue_minor, event.payout_percent, event.revenue_percent
        )
        problem = rules.loss_problem(figures)
        if problem:
            raise ValidationError(
                f"events[{index}]: {problem}; only an admin may allow a loss leader (allow_loss)",
                field=f"events[{index}]",
                code="loss_leader",
            )
    for name in ("click", "impression"):
        if getattr(offer, f"{name}_payout_minor") > getattr(offer, f"{name}_revenue_minor"):
            raise ValidationError(
                f"{name}_payout is greater than {name}_revenue; only an admin may allow a loss leader",
                field=f"{name}_payout",
                code="loss_leader",
            )


def _cap_limit(cap: dict[str, Any], currency: str, field: str) -> int:
    limit = cap["limit"]
    if cap["metric"] == "payout":
        # Money arrives as a decimal string only: a JSON number would be a float.
        if not isinstance(limit, str):
            raise ValidationError(f'{field} must be a decimal string like "500.00" for a payout cap', field=field)
        return _amount(limit, currency, field)
    if isinstance(limit, bool) or not (
        isinstance(limit, int) or (isinstance(limit, str) and limit.isascii() and limit.isdigit())
    ):
        raise ValidationError(f"{field} must be a whole number", field=field)
    if int(limit) < 0:
        raise ValidationError(f"{field} must not be negative", field=field)
    return int(limit)


def _apply_caps(offer: Offer, caps: Sequence[dict[str, Any]]) -> None:
    """Replace the offer's caps; a cap with the same metric, period and scope keeps its row (and its counters)."""
    existing = {(cap.metric, cap.period, cap.scope): cap for cap in offer.caps}
    result = []
    seen = set()
    for index, data in enumerate(caps):
        key = (data["metric"], data["period"], data.get("scope", "offer"))
        if key in seen:
            raise ValidationError(
                f"caps[{index}]: a {key[0]} cap per {key[1]} and {key[2]} is already given", field=f"caps[{index}]"
            )
        seen.add(key)
        limit = _cap_limit(data, offer.currency, f"caps[{index}].limit")
        cap = existing.get(key) or Cap(metric=key[0], period=key[1], scope=key[2])
        cap.limit = limit
        result.append(cap)
    offer.caps = result


def _apply_events(offer: Offer, events: Sequence[dict[str, Any]]) -> None:
    keys = [event["key"] for event in events]
    if not keys:
        raise ValidationError("an offer needs at least one event", field="events")
    if len(set(keys)) != len(keys):
        raise ValidationError("event keys must be unique", field="events")
    existing = {event.key: event for event in offer.events}
    missing = set(existing) - set(keys)
    if missing:
        raise ValidationError(
            f"events cannot be removed once created (missing: {', '.join(sorted(missing))})", field="events"
        )
    ordered = []
    for index, data in enumerate(events):
        figures = _event_figures(data, offer.currency, index)
        event = existing.get(data["key"]) or OfferEvent(key=data["key"])
        event.model = data["model"]
        event.position = index
        for name, value in figures.items():
            setattr(event, name, value)
        ordered.append(event)
    offer.events = ordered


def _refuse_admin_fields(data: dict[str, Any]) -> None:
    for field in ADMIN_FIELDS:
        if field in data:
            raise ValidationError(f"{field} may only be set by an admin", field=field)


def create_offer(session: Session, principal: Principal, data: dict[str, Any]) -> Offer:
    """Create a draft offer for the brand of the key (or, for admin, the given brand_id)."""
    require(principal, Role.ADMIN, Role.BRAND)
    data = dict(data)
    if principal.role is Role.BRAND:
        _refuse_admin_fields(data)
        brand_id = principal.brand_id
    else:
        brand_id = data.pop("brand_id", None)
        if brand_id is None:
            raise ValidationError("brand_id is required when an admin creates an offer", field="brand_id")
    brand = session.get(Brand, brand_id)
    if brand is None:
        raise ValidationError("unknown brand", field="brand_id")
    currency = data.pop("currency", None) or brand.currency
    try:
        money.check_currency(currency)
    except money.MoneyError as exc:
        raise ValidationError(str(exc), field="currency") from exc
    offer = Offer(
        brand_id=brand.id,
        currency=currency,
        status=OfferStatus.DRAFT.value,
        allow_loss=False,
        **{column: 0 for column in _MONEY_FIELDS.values()},
    )
    _apply(session, offer, data, creating=True)
    session.add(offer)
    session.flush()
    return offer


def update_offer(session: Session, principal: Principal, offer_id: int, data: dict[str, Any]) -> Offer:
    """Change an offer's settings; events are matched by key and never removed."""
    offer = _own_offer(session, principal, offer_id)
    if offer.status == OfferStatus.ARCHIVED.value:
        raise Conflict("an archived offer cannot be changed", code="offer_archived")
    data = dict(data)
    if "currency" in data and data["currency"] != offer.currency:
        raise ValidationError("currency cannot change after creation", field="currency")
    data.pop("currency", None)
    if principal.role is Role.BRAND:
        _refuse_admin_fields(data)
    _apply(session, offer, data, creating=False)
    return offer


def _apply(session: Session, offer: Offer, data: dict[str, Any], *, creating: bool) -> None:
    _check_urls(data)
    for name in _SCALARS:
        if name in data:
            setattr(offer, name, data[name])
    if "allow_loss" in data:
        offer.allow_loss = bool(data["allow_loss"])
    if "allowed_domains" in data:
        offer.allowed_domains = _domains(data["allowed_domains"])
    if "countries" in data:
        offer.countries = sorted({c.upper() for c in data["countries"]})
    if "devices" in data:
        offer.devices = sorted(set(data["devices"]))
    for field, column in _MONEY_FIELDS.items():
        if field in data:
            setattr(offer, column, _amount(data[field], offer.currency, field) if data[field] else 0)
    if "payout_min_amount" in data:
        value = data["payout_min_amount"]
        offer.payout_min_minor = _amount(value, offer.currency, "payout_min_amount") if value else None
    if "events" in data:
        _apply_events(offer, data["events"])
    elif creating:
        raise ValidationError("events is required", field="events")
    if "caps" in data:
        _apply_caps(offer, data["caps"])
    _check_loss(offer)
    if offer.id is not None and not offer.allow_loss:
        # Changed figures must not turn an existing per-partner override into a loss.
        for override in session.scalars(select(PartnerOverride).where(PartnerOverride.offer_id == offer.id)):
            event = next(e for e in offer.events if e.id == override.event_id)
            _check_override_loss(offer, event, override.payout_minor, override.payout_percent)


def change_status(session: Session, principal: Principal, offer_id: int, action: str) -> Offer:
    """Activate, pause or archive an offer; a move its status does not allow is 409."""
    offer = _own_offer(session, principal, offer_id)
    target = rules.next_status(offer.status, action)
    if target is None:
        raise Conflict(f"cannot {action} an offer that is {offer.status}", code="invalid_transition")
    offer.status = target
    return offer


# ---- partner access ----------------------------------------------------------------------------


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
    offer = _own_offer(session, principal, offer_id)
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
    offer = _own_offer(session, principal, offer_id)
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


# ---- overrides ---------------------------------------------------------------------------------


def _override_figures(event: OfferEvent, data: dict[str, Any], currency: str) -> tuple[int, int]:
    """Return (payout_minor, payout_percent) of an override: exactly the payout figures the event's model has."""
    flat = event.model in ("cpa", "cpl", "cpi", "hybrid")
    percent = event.model in ("revshare", "hybrid")
    for field, needed in (("payout", flat), ("payout_percent", percent)):
        given = data.get(field) not in (None, "")
        if needed and not given:
            raise ValidationError(f"{field} is required to override a {event.model} event", field=field)
        if given and not needed:
            raise ValidationError(f"a {event.model} event has no {field}", field=field)
    payout = _amount(data["payout"], currency, "payout") if flat else 0
    payout_percent = _percent(data["payout_percent"], "payout_percent") if percent else 0
    return payout, payout_percent


def _check_override_loss(offer: Offer, event: OfferEvent, payout_minor: int, payout_percent: int) -> None:
    figures = rules.with_override(
        rules.Figures(
            event.model, event.payout_minor, event.revenue_minor, event.payout_percent, event.revenue_percent
        ),
        payout_minor,
        payout_percent,
    )
    loss = rules.loss_problem(figures)
    if loss and not offer.allow_loss:
        field = "payout_percent" if "percent" in loss else "payout"
        raise ValidationError(
            f"{event.key}: a partner override's {loss}; only an admin may allow a loss leader (allow_loss)",
            field=field,
            code="loss_leader",
        )


def set_override(session: Session, principal: Principal, offer_id: int, data: dict[str, Any]) -> PartnerOverride:
    """Set one partner's payout for one event of an offer (brand of the offer, or admin)."""
    offer = _own_offer(session, principal, offer_id)
    event = next((e for e in offer.events if e.key == data["event"]), None)
    if event is None:
        raise ValidationError(f"unknown event {data['event']!r}", field="event")
    if session.get(Partner, data["partner_id"]) is None:
        raise ValidationError("unknown partner", field="partner_id")
    payout, percent = _override_figures(event, data, offer.currency)
    _check_override_loss(offer, event, payout, percent)
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
    offer = _own_offer(session, principal, offer_id)
    query = select(PartnerOverride).where(PartnerOverride.offer_id == offer.id)
    if partner_id is not None:
        query = query.where(PartnerOverride.partner_id == partner_id)
    return list(session.scalars(paged(query, PartnerOverride.id, limit=limit, after=after)))


def delete_override(session: Session, principal: Principal, offer_id: int, override_id: int) -> None:
    """Remove a per-partner override (brand of the offer, admin)."""
    offer = _own_offer(session, principal, offer_id)
    override = session.get(PartnerOverride, override_id)
    if override is None or override.offer_id != offer.id:
        raise NotFound("override not found")
    session.delete(override)
    session.flush()
