"""Input and output schemas for offers, caps, overrides and partner access."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate

from network import money
from network.auth import Principal, Role
from network.offers.models import Offer, OfferAccess, OfferEvent, PartnerOverride
from network.offers.rules import ATTRIBUTIONS, FLAGS, hold_flags
from network.schemas import Amount, PageArgs, PageSchema, Percent, StrictSchema, column_length

MODELS = ("cpa", "cpl", "cpi", "revshare", "hybrid")
DEVICES = ("desktop", "mobile", "tablet", "other")
_NAME = validate.Length(min=1, max=column_length(Offer.name))
_EVENT_KEY_LENGTH = column_length(OfferEvent.key)


class EventInSchema(StrictSchema):
    #: What postbacks send as `event`; the first event is the default.
    key = fields.String(
        required=True,
        validate=[validate.Length(max=_EVENT_KEY_LENGTH), validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$")],
    )
    model = fields.String(required=True, validate=validate.OneOf(MODELS))
    #: Flat amounts (cpa, cpl, cpi, hybrid): what the partner earns, what the brand pays the network.
    payout = Amount()
    revenue = Amount()
    #: Percent of the sale amount (revshare, hybrid).
    payout_percent = Percent()
    revenue_percent = Percent()
    #: Recurring terms for a bound customer's conversions without a click: N months from its
    #: binding, or its first N conversions of this event; neither: forever (at most one of them).
    recurring_months = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1200))
    recurring_conversions = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=1_000_000))


class CapInSchema(StrictSchema):
    metric = fields.String(required=True, validate=validate.OneOf(("conversions", "payout", "clicks")))
    period = fields.String(required=True, validate=validate.OneOf(("day", "week", "month", "lifetime")))
    #: A whole number; for the payout metric a decimal amount string ("500.00").
    limit = fields.Raw(required=True, metadata={"example": 1000})
    scope = fields.String(load_default="offer", validate=validate.OneOf(("offer", "partner")))


class OfferUpdateSchema(StrictSchema):
    name = fields.String(validate=_NAME)
    destination_url = fields.String(validate=validate.Length(min=1, max=4000))
    allowed_domains = fields.List(fields.String(validate=validate.Length(max=253)), validate=validate.Length(max=100))
    currency = fields.String(validate=validate.Length(equal=3))
    visibility = fields.String(validate=validate.OneOf(("public", "approval", "private")))
    conversion_window_days = fields.Integer(validate=validate.Range(min=0, max=3650))
    hold_days = fields.Integer(validate=validate.Range(min=0, max=365))
    min_seconds = fields.Integer(validate=validate.Range(min=0, max=86400 * 30))
    countries = fields.List(
        fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$")), validate=validate.Length(max=300)
    )
    devices = fields.List(fields.String(validate=validate.OneOf(DEVICES)))
    fallback_url = fields.String(allow_none=True, validate=validate.Length(max=4000))
    caps = fields.List(fields.Nested(CapInSchema), validate=validate.Length(max=20))
    #: Matched by key; an event cannot be removed once created.
    events = fields.List(fields.Nested(EventInSchema), validate=validate.Length(min=1, max=50))
    #: CPC: per unique, non-bot click. CPM: per 1,000 impressions.
    click_payout = Amount()
    click_revenue = Amount()
    impression_payout = Amount()
    impression_revenue = Amount()
    #: Admin only: overrides PAYOUT_MIN_AMOUNT for this offer's commissions.
    payout_min_amount = Amount(allow_none=True)
    #: Admin only: allow payout above revenue (a loss leader).
    allow_loss = fields.Boolean()
    #: When a click and another partner's coupon meet: the click wins (default), or the coupon.
    coupon_rule = fields.String(validate=validate.OneOf(("click", "coupon")))
    #: last_click (default): the click the conversion's click id names; first_click: the visitor's
    #: earliest click on the offer inside the window (maybe another partner's).
    attribution = fields.String(validate=validate.OneOf(ATTRIBUTIONS))
    #: The fraud flags that hold a conversion pending for review (default: all but repeat_visitor).
    hold_flags = fields.List(fields.String(validate=validate.OneOf(FLAGS)), validate=validate.Length(max=len(FLAGS)))


class OfferCreateSchema(OfferUpdateSchema):
    name = fields.String(required=True, validate=_NAME)
    destination_url = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    events = fields.List(fields.Nested(EventInSchema), required=True, validate=validate.Length(min=1, max=50))
    #: Admin only: which brand the offer belongs to.
    brand_id = fields.Integer()


class EventSchema(Schema):
    key = fields.String()
    model = fields.String()
    payout = fields.String()
    revenue = fields.String()
    payout_percent = fields.String()
    revenue_percent = fields.String()
    recurring_months = fields.Integer(allow_none=True)
    recurring_conversions = fields.Integer(allow_none=True)


class CapSchema(Schema):
    metric = fields.String()
    period = fields.String()
    limit = fields.Raw()
    scope = fields.String()


class OfferSchema(Schema):
    id = fields.Integer()
    brand_id = fields.Integer()
    name = fields.String()
    status = fields.String()
    visibility = fields.String()
    currency = fields.String()
    destination_url = fields.String()
    allowed_domains = fields.List(fields.String())
    conversion_window_days = fields.Integer()
    hold_days = fields.Integer()
    min_seconds = fields.Integer()
    countries = fields.List(fields.String())
    devices = fields.List(fields.String())
    fallback_url = fields.String(allow_none=True)
    caps = fields.List(fields.Nested(CapSchema))
    events = fields.List(fields.Nested(EventSchema))
    click_payout = fields.String()
    click_revenue = fields.String()
    impression_payout = fields.String()
    impression_revenue = fields.String()
    payout_min_amount = fields.String(allow_none=True)
    allow_loss = fields.Boolean()
    #: For partners: whether they may take links now (public, approved or invited).
    can_run = fields.Boolean()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    coupon_rule = fields.String()
    attribution = fields.String()
    hold_flags = fields.List(fields.String())


class OfferListSchema(PageSchema):
    items = fields.List(fields.Nested(OfferSchema))


class OfferListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(("draft", "active", "paused", "archived")))
    visibility = fields.String(validate=validate.OneOf(("public", "approval", "private")))
    brand_id = fields.Integer()


class ApplicationInSchema(StrictSchema):
    note = fields.String(load_default=None, validate=validate.Length(max=2000), metadata={"free_text": True})


class InvitationInSchema(StrictSchema):
    partner_id = fields.Integer(required=True)


class AccessSchema(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    kind = fields.String()
    status = fields.String()
    note = fields.String(allow_none=True)
    created_at = fields.DateTime()
    decided_at = fields.DateTime(allow_none=True)


class AccessListSchema(PageSchema):
    items = fields.List(fields.Nested(AccessSchema))


class AccessListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(("pending", "approved", "rejected")))


class OverrideInSchema(StrictSchema):
    partner_id = fields.Integer(required=True)
    #: The event's key.
    event = fields.String(required=True, validate=validate.Length(max=_EVENT_KEY_LENGTH))
    #: The figures the event's model has: payout (flat models), payout_percent (revshare), both (hybrid).
    payout = Amount()
    payout_percent = Percent()


class OverrideSchema(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    event = fields.String()
    payout = fields.String()
    payout_percent = fields.String()


class OverrideListSchema(PageSchema):
    items = fields.List(fields.Nested(OverrideSchema))


class OverrideListArgs(PageArgs):
    partner_id = fields.Integer()


def dump_offer(
    offer: Offer,
    principal: Principal,
    *,
    can_run: bool | None = None,
    overrides: Mapping[int, PartnerOverride] | None = None,
) -> dict[str, Any]:
    """Return an offer as the principal may see it: a partner sees its own payout (overrides applied),
    never the brand's revenue, caps or other partners' figures."""
    cur = offer.currency
    fmt = money.format_amount
    partner_view = principal.role is Role.PARTNER
    out: dict[str, Any] = {
        "id": offer.id,
        "brand_id": offer.brand_id,
        "name": offer.name,
        "status": offer.status,
        "visibility": offer.visibility,
        "currency": cur,
        "destination_url": offer.destination_url,
        "allowed_domains": list(offer.allowed_domains or []),
        "conversion_window_days": offer.conversion_window_days,
        "hold_days": offer.hold_days,
        "min_seconds": offer.min_seconds,
        "countries": list(offer.countries or []),
        "devices": list(offer.devices or []),
        "fallback_url": offer.fallback_url,
        "events": [
            _dump_event(event, cur, (overrides or {}).get(event.id) if partner_view else None, partner_view)
            for event in offer.events
        ],
        "click_payout": fmt(offer.click_payout_minor, cur),
        "impression_payout": fmt(offer.impression_payout_minor, cur),
        "created_at": offer.created_at,
        "updated_at": offer.updated_at,
        "coupon_rule": offer.coupon_rule,
    }
    if partner_view:
        out["can_run"] = bool(can_run)
        return out
    out["caps"] = [
        {
            "metric": cap.metric,
            "period": cap.period,
            "limit": fmt(cap.limit, cur) if cap.metric == "payout" else cap.limit,
            "scope": cap.scope,
        }
        for cap in offer.caps
    ]
    out["click_revenue"] = fmt(offer.click_revenue_minor, cur)
    out["impression_revenue"] = fmt(offer.impression_revenue_minor, cur)
    out["payout_min_amount"] = fmt(offer.payout_min_minor, cur) if offer.payout_min_minor is not None else None
    out["allow_loss"] = offer.allow_loss
    out["attribution"] = offer.attribution or "last_click"
    out["hold_flags"] = hold_flags(offer.hold_flags)
    return out


def _dump_event(
    event: OfferEvent, currency: str, override: PartnerOverride | None, partner_view: bool
) -> dict[str, Any]:
    """Return an offer's event with the figures its model has; a partner sees its payout, never revenue."""
    payout_minor = override.payout_minor if override else event.payout_minor
    payout_percent = override.payout_percent if override else event.payout_percent
    item: dict[str, Any] = {"key": event.key, "model": event.model}
    if event.model in ("cpa", "cpl", "cpi", "hybrid"):
        item["payout"] = money.format_amount(payout_minor, currency)
        if not partner_view:
            item["revenue"] = money.format_amount(event.revenue_minor, currency)
    if event.model in ("revshare", "hybrid"):
        item["payout_percent"] = money.format_percent(payout_percent)
        if not partner_view:
            item["revenue_percent"] = money.format_percent(event.revenue_percent)
    # Recurring terms only when the event has them (forever otherwise).
    if event.recurring_months is not None:
        item["recurring_months"] = event.recurring_months
    if event.recurring_conversions is not None:
        item["recurring_conversions"] = event.recurring_conversions
    return item


def dump_override(override: PartnerOverride, offer: Offer) -> dict[str, Any]:
    """Return an override with its event's key and money as strings (only the figures its model has)."""
    event = next(e for e in offer.events if e.id == override.event_id)
    out: dict[str, Any] = {
        "id": override.id,
        "offer_id": override.offer_id,
        "partner_id": override.partner_id,
        "event": event.key,
    }
    if event.model in ("cpa", "cpl", "cpi", "hybrid"):
        out["payout"] = money.format_amount(override.payout_minor, offer.currency)
    if event.model in ("revshare", "hybrid"):
        out["payout_percent"] = money.format_percent(override.payout_percent)
    return out


def dump_access(access: OfferAccess) -> dict[str, Any]:
    """Return an application or invitation."""
    return {c: getattr(access, c) for c in AccessSchema._declared_fields}
