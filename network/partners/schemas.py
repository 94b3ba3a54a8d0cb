"""Input and output schemas for partners."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from network.partners.models import Partner
from network.schemas import Amount, PageArgs, PageSchema, StrictSchema, column_length

STATUSES = ("pending", "active", "suspended", "rejected")


_NAME = validate.Length(min=1, max=column_length(Partner.name))
_EMAIL = validate.Length(max=column_length(Partner.email))


class PartnerCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=_NAME)
    email = fields.Email(load_default=None, validate=_EMAIL)
    status = fields.String(load_default="active", validate=validate.OneOf(STATUSES))


class PartnerUpdateSchema(StrictSchema):
    name = fields.String(validate=_NAME)
    email = fields.Email(allow_none=True, validate=_EMAIL)
    #: Called on each conversion and status change; macros of SPEC §5. Empty or null removes it.
    postback_url = fields.String(allow_none=True, validate=validate.Length(max=2000))
    #: "get" calls the URL; "post" sends signed JSON.
    postback_method = fields.String(validate=validate.OneOf(("get", "post")))
    #: Admin only: overrides PAYOUT_MIN_AMOUNT for this partner.
    payout_min_amount = Amount(allow_none=True)


class PartnerListArgs(PageArgs):
    status = fields.String(validate=validate.OneOf(STATUSES))


class PartnerStatusSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))


class PartnerSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String(allow_none=True)
    status = fields.String()
    postback_url = fields.String(allow_none=True)
    postback_method = fields.String()
    payout_min_amount = fields.String(allow_none=True)
    stripe_account_id = fields.String(allow_none=True)
    stripe_payouts_enabled = fields.Boolean()
    created_at = fields.DateTime()


class PartnerSecretSchema(Schema):
    postback_secret = fields.String()


class PartnerListSchema(PageSchema):
    items = fields.List(fields.Nested(PartnerSchema))
