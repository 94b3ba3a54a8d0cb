"""Offers: publishing (create, update, events, caps), status, and which partners may run them.

The rest of the offers service lives by job in `visibility` (who may see and change an offer),
`validation` (incoming fields to stored values), `access` (applications and invitations) and
`overrides` (per-partner payouts); their public names are imported here, where callers find them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network import money
from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.errors import Conflict, ValidationError
from network.offers import rules
from network.offers.access import apply_to_offer, decide_access, invite, list_access, partner_applications
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
from network.offers.overrides import delete_override, list_overrides, set_override
from network.offers.validation import (
    ADMIN_FIELDS,
    amount_field,
    cap_limit,
    check_loss,
    check_override_loss,
    check_urls,
    domains,
    event_figures,
    refuse_admin_fields,
)
from network.offers.visibility import (
    get_offer,
    list_offers,
    own_offer,
    partner_access,
    partner_may_see,
)
from network.partners.models import Partner, PartnerStatus

__all__ = [
    "ADMIN_FIELDS",
    "Principal",
    "Role",
    "apply_to_offer",
    "change_status",
    "create_offer",
    "decide_access",
    "delete_override",
    "get_offer",
    "invite",
    "list_access",
    "list_offers",
    "list_overrides",
    "partner_access",
    "partner_applications",
    "partner_may_run",
    "partner_may_see",
    "partner_views",
    "set_override",
    "update_offer",
]

_MONEY_FIELDS = {
    "click_payout": "click_payout_minor",
    "click_revenue": "click_revenue_minor",
    "impression_payout": "impression_payout_minor",
    "impression_revenue": "impression_revenue_minor",
}
_SCALARS = (
    "name", "destination_url", "visibility", "conversion_window_days", "hold_days", "min_seconds",
    "fallback_url", "coupon_rule",
)  # fmt: skip


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
        limit = cap_limit(data, offer.currency, f"caps[{index}].limit")
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
        figures = event_figures(data, offer.currency, index)
        event = existing.get(data["key"]) or OfferEvent(key=data["key"])
        event.model = data["model"]
        event.position = index
        for name, value in figures.items():
            setattr(event, name, value)
        _apply_recurring(event, data, index)
        ordered.append(event)
    offer.events = ordered


def create_offer(session: Session, principal: Principal, data: dict[str, Any]) -> Offer:
    """Create a draft offer for the brand of the key (or, for admin, the given brand_id)."""
    require(principal, Role.ADMIN, Role.BRAND)
    data = dict(data)
    if principal.role is Role.BRAND:
        refuse_admin_fields(data)
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
    offer = own_offer(session, principal, offer_id)
    if offer.status == OfferStatus.ARCHIVED.value:
        raise Conflict("an archived offer cannot be changed", code="offer_archived")
    data = dict(data)
    if "currency" in data and data["currency"] != offer.currency:
        raise ValidationError("currency cannot change after creation", field="currency")
    data.pop("currency", None)
    if principal.role is Role.BRAND:
        refuse_admin_fields(data)
    _apply(session, offer, data, creating=False)
    return offer


def _apply(session: Session, offer: Offer, data: dict[str, Any], *, creating: bool) -> None:
    """Set the given fields of an offer, validated; a loss (here or in an override) needs allow_loss."""
    check_urls(data)
    _apply_settings(offer, data)
    if "events" in data:
        _apply_events(offer, data["events"])
    elif creating:
        raise ValidationError("events is required", field="events")
    if "caps" in data:
        _apply_caps(offer, data["caps"])
    check_loss(offer)
    if offer.id is not None and not offer.allow_loss:
        # Changed figures must not turn an existing per-partner override into a loss.
        for override in session.scalars(select(PartnerOverride).where(PartnerOverride.offer_id == offer.id)):
            event = next(e for e in offer.events if e.id == override.event_id)
            check_override_loss(offer, event, override.payout_minor, override.payout_percent)


def _apply_settings(offer: Offer, data: dict[str, Any]) -> None:
    """Set the offer's own fields (all but events and caps) that `data` gives."""
    for name in _SCALARS:
        if name in data:
            setattr(offer, name, data[name])
    if "allow_loss" in data:
        offer.allow_loss = bool(data["allow_loss"])
    if "allowed_domains" in data:
        offer.allowed_domains = domains(data["allowed_domains"])
    if "countries" in data:
        offer.countries = sorted({c.upper() for c in data["countries"]})
    if "devices" in data:
        offer.devices = sorted(set(data["devices"]))
    for field, column in _MONEY_FIELDS.items():
        if field in data:
            setattr(offer, column, amount_field(data[field], offer.currency, field) if data[field] else 0)
    if "payout_min_amount" in data:
        value = data["payout_min_amount"]
        offer.payout_min_minor = amount_field(value, offer.currency, "payout_min_amount") if value else None
    if "attribution" in data:
        offer.attribution = data["attribution"]
    if "hold_flags" in data:
        offer.hold_flags = rules.hold_flags(data["hold_flags"])


def change_status(session: Session, principal: Principal, offer_id: int, action: str) -> Offer:
    """Activate, pause or archive an offer; a move its status does not allow is 409."""
    offer = own_offer(session, principal, offer_id)
    target = rules.next_status(offer.status, action)
    if target is None:
        raise Conflict(f"cannot {action} an offer that is {offer.status}", code="invalid_transition")
    offer.status = target
    return offer


def _apply_recurring(event: OfferEvent, data: dict[str, Any], index: int) -> None:
    """Set an event's recurring terms (N months, or first N conversions; neither: forever); both is 400."""
    months, conversions = data.get("recurring_months"), data.get("recurring_conversions")
    if months is not None and conversions is not None:
        raise ValidationError(
            f"events[{index}]: give recurring_months or recurring_conversions, not both", field="events"
        )
    event.recurring_months, event.recurring_conversions = months, conversions
