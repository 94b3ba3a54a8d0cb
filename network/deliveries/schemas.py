"""Input and output schemas for partner postbacks."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from network.netguard import MAX_TEMPLATE_LENGTH
from network.schemas import PageArgs, PageSchema, StrictSchema

DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead")
METHODS = ("get", "post")


class DeliveryListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES))
    #: Admin and finance: one partner's deliveries (a partner only ever sees its own).
    partner_id = fields.Integer(validate=validate.Range(min=1))
    conversion_id = fields.Integer(validate=validate.Range(min=1))


class PostbackAttemptSchema(Schema):
    number = fields.Integer()
    at = fields.DateTime()
    method = fields.String()
    url = fields.String(metadata={"description": "The URL called, with secret-looking values masked"})
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer()
    error = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    response_excerpt = fields.String(allow_none=True)
    recorded = fields.Boolean()


class DeliverySchema(Schema):
    id = fields.Integer()
    webhook_id = fields.String(metadata={"description": "Sent as the webhook-id header; the same on every retry"})
    partner_id = fields.Integer()
    offer_id = fields.Integer()
    conversion_id = fields.Integer()
    target = fields.String(metadata={"description": "global, or offer:<offer postback id>"})
    old_status = fields.String(allow_none=True)
    new_status = fields.String(metadata={"description": "The conversion status this delivery announces"})
    event_at = fields.DateTime()
    macros = fields.Dict(keys=fields.String(), values=fields.String())
    status = fields.String(metadata={"description": "pending, delivered, failed (410 or URL gone) or dead"})
    attempts = fields.Integer()
    max_attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    method = fields.String(allow_none=True)
    url = fields.String(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class DeliveryDetailSchema(DeliverySchema):
    attempt_log = fields.List(fields.Nested(PostbackAttemptSchema))


class DeliveryListSchema(PageSchema):
    items = fields.List(fields.Nested(DeliverySchema))


class OfferPostbackCreateSchema(StrictSchema):
    offer_id = fields.Integer(required=True, validate=validate.Range(min=1))
    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_TEMPLATE_LENGTH))
    method = fields.String(load_default="get", validate=validate.OneOf(METHODS))


class OfferPostbackUpdateSchema(StrictSchema):
    url = fields.String(validate=validate.Length(min=1, max=MAX_TEMPLATE_LENGTH))
    method = fields.String(validate=validate.OneOf(METHODS))


class PostbackDisableSchema(Schema):
    id = fields.Integer()
    partner_id = fields.Integer()
    target = fields.String()
    url = fields.String()
    reason = fields.String()
    delivery_id = fields.Integer(allow_none=True)
    disabled_at = fields.DateTime()


class OfferPostbackSchema(Schema):
    id = fields.Integer()
    partner_id = fields.Integer()
    offer_id = fields.Integer()
    url = fields.String()
    method = fields.String()
    disabled = fields.Nested(PostbackDisableSchema, allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OfferPostbackListSchema(PageSchema):
    items = fields.List(fields.Nested(OfferPostbackSchema))


class PostbackDisableListSchema(PageSchema):
    items = fields.List(fields.Nested(PostbackDisableSchema))


class PostbackTestInSchema(StrictSchema):
    #: Test the partner's URL for this offer instead of its global URL.
    offer_id = fields.Integer(load_default=None, validate=validate.Range(min=1))


class PostbackTestSchema(Schema):
    ok = fields.Boolean()
    method = fields.String()
    url = fields.String()
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Integer()
    error = fields.String(allow_none=True)
    address = fields.String(allow_none=True)
    response_excerpt = fields.String(allow_none=True)
    enabled_again = fields.Boolean()
