"""Input and output schemas for conversions and the postback log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from marshmallow import Schema, fields, validate

from network import money
from network.auth import Principal, Role
from network.conversions.models import Conversion, ConversionHistory, PostbackLog
from network.schemas import PageArgs, PageSchema, StrictSchema, column_length

STATUSES = ("pending", "approved", "rejected", "reversed")


def _time(**kwargs: Any) -> fields.AwareDateTime:
    # A time without an offset is taken as UTC (SPEC §2: times are UTC).
    return fields.AwareDateTime(default_timezone=dt.UTC, **kwargs)


#: Ids are INTEGER columns: a larger one is refused as input (400), never sent to the database.
_ID = validate.Range(min=1, max=2**31 - 1)


class ConversionListArgs(PageArgs):
    offer_id = fields.Integer(validate=_ID)
    partner_id = fields.Integer(validate=_ID)
    status = fields.String(validate=validate.OneOf(STATUSES))
    #: Created at or after this time.
    since = _time(data_key="from")
    #: Created before this time.
    until = _time(data_key="to")


class StatusInSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(("approved", "rejected", "reversed")))
    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=column_length(Conversion.reason)),
        metadata={"free_text": True},
    )


class HistorySchema(Schema):
    at = fields.DateTime()
    old_status = fields.String(allow_none=True)
    new_status = fields.String()
    reason = fields.String(allow_none=True)
    actor = fields.String()


class ConversionSchema(Schema):
    id = fields.Integer()
    offer_id = fields.Integer()
    event = fields.String()
    brand_id = fields.Integer()
    partner_id = fields.Integer()
    link_id = fields.Integer()
    #: The click the postback named (null for a customer's or coupon's conversion without one).
    click_id = fields.String(allow_none=True)
    clicked_at = fields.DateTime(allow_none=True)
    #: Shown to partners only when the brand shares its txn ids.
    txn_id = fields.String(allow_none=True)
    status = fields.String()
    reason = fields.String(allow_none=True)
    #: Fraud signals that hold it for review (brand and admin only).
    flags = fields.List(fields.String())
    currency = fields.String()
    #: The sale amount the brand reported (never shown to partners).
    amount = fields.String(allow_none=True)
    #: What the partner earns (never shown to brands).
    payout = fields.String()
    #: What the network earns from the brand (never shown to partners).
    revenue = fields.String()
    created_at = fields.DateTime()
    hold_until = fields.DateTime(allow_none=True)
    status_changed_at = fields.DateTime()
    history = fields.List(fields.Nested(HistorySchema))
    #: How it was attributed: `click`, `customer` (a bound customer without a click) or `coupon`.
    attributed_by = fields.String()
    #: The brand's id for its customer, and the coupon code, when the postback sent them.
    customer_id = fields.String(allow_none=True)
    coupon = fields.String(allow_none=True)
    #: What each flag was raised on, by flag (brand and admin only).
    evidence = fields.Dict(keys=fields.String())


class ConversionListSchema(PageSchema):
    items = fields.List(fields.Nested(ConversionSchema))


class PostbackLogArgs(PageArgs):
    offer_id = fields.Integer(validate=_ID)
    # Control characters are refused by StrictSchema's text rule (PostgreSQL cannot even compare a NUL).
    click_id = fields.String(validate=validate.Length(max=512))
    txn_id = fields.String(validate=validate.Length(max=512))
    http_status = fields.Integer(validate=validate.Range(min=100, max=599))
    since = _time(data_key="from")
    until = _time(data_key="to")


class PostbackLogSchema(Schema):
    id = fields.Integer()
    received_at = fields.DateTime()
    #: postback or pixel.
    source = fields.String()
    method = fields.String()
    brand_id = fields.Integer(allow_none=True)
    offer_id = fields.Integer(allow_none=True)
    click_id = fields.String(allow_none=True)
    txn_id = fields.String(allow_none=True)
    #: The parameters received; token and signature are never kept.
    params = fields.Dict()
    http_status = fields.Integer()
    conversion_id = fields.Integer(allow_none=True)
    status = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)
    duplicate = fields.Boolean()
    remote_addr = fields.String(allow_none=True)
    #: The request's id: its X-Request-ID, as in the logs.
    request_id = fields.String(allow_none=True)


class PostbackLogListSchema(PageSchema):
    items = fields.List(fields.Nested(PostbackLogSchema))


def dump_conversion(
    conversion: Conversion,
    principal: Principal,
    *,
    event_key: str,
    share_txn_id: bool = False,
    history: list[ConversionHistory] | None = None,
) -> dict[str, Any]:
    """Return a conversion as the principal may see it: brands never see payout, partners never revenue."""
    cur = conversion.currency
    out: dict[str, Any] = {
        "id": conversion.id,
        "offer_id": conversion.offer_id,
        "event": event_key,
        "partner_id": conversion.partner_id,
        "link_id": conversion.link_id,
        "click_id": conversion.click_id,
        "clicked_at": conversion.clicked_at,
        "status": conversion.status,
        "reason": conversion.reason,
        "currency": cur,
        "created_at": conversion.created_at,
        "hold_until": conversion.hold_until,
        "status_changed_at": conversion.status_changed_at,
        "attributed_by": conversion.attributed_by,
        "customer_id": conversion.customer_id,
        "coupon": conversion.coupon,
    }
    role = principal.role
    if role is Role.PARTNER:
        # Another partner's click (a coupon won over it) or coupon (a click won over it) is not theirs to see.
        if conversion.attributed_by != "click":
            out["click_id"] = out["clicked_at"] = None
        if conversion.attributed_by != "coupon":
            out["coupon"] = None
        out["payout"] = money.format_amount(conversion.payout_minor, cur)
        if share_txn_id:
            out["txn_id"] = conversion.txn_id
        return out
    out["brand_id"] = conversion.brand_id
    # The brand's sale amount, like reports' sale_amount, is never shown to partners.
    out["amount"] = money.format_amount(conversion.amount_minor, cur) if conversion.amount_minor is not None else None
    out["txn_id"] = conversion.txn_id
    out["flags"] = list(conversion.flags or [])
    out["evidence"] = dict(conversion.evidence or {})
    out["revenue"] = money.format_amount(conversion.revenue_minor, cur)
    if role is not Role.BRAND:
        out["payout"] = money.format_amount(conversion.payout_minor, cur)
    if history is not None:
        out["history"] = history
    return out


def dump_log(line: PostbackLog) -> dict[str, Any]:
    """Return a postback log line."""
    return {name: getattr(line, name) for name in PostbackLogSchema._declared_fields}
