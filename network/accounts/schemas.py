"""Input and output schemas for keys and brands."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from network.accounts.models import ApiKey, Brand
from network.schemas import PageArgs, PageSchema, StrictSchema, column_length

ROLES = ("admin", "finance", "brand", "partner")


class KeyCreateSchema(StrictSchema):
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    #: Required for a brand key: the brand it acts for.
    brand_id = fields.Integer(load_default=None)
    #: Required for a partner key: the partner it acts for.
    partner_id = fields.Integer(load_default=None)
    label = fields.String(load_default=None, validate=validate.Length(max=column_length(ApiKey.label)))


class KeyListArgs(PageArgs):
    role = fields.String(validate=validate.OneOf(ROLES))
    brand_id = fields.Integer()
    partner_id = fields.Integer()
    revoked = fields.Boolean()


class KeySchema(Schema):
    id = fields.Integer()
    #: The readable start of the key, to tell keys apart; the key itself is never shown again.
    prefix = fields.String()
    role = fields.String()
    brand_id = fields.Integer(allow_none=True)
    partner_id = fields.Integer(allow_none=True)
    label = fields.String(allow_none=True)
    created_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)


class NewKeySchema(KeySchema):
    #: The key itself: shown in this response only.
    key = fields.String()


class KeyListSchema(PageSchema):
    items = fields.List(fields.Nested(KeySchema))


_NAME = validate.Length(min=1, max=column_length(Brand.name))


class BrandCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=_NAME)
    #: ISO 4217 code; the default currency of the brand's offers.
    currency = fields.String(required=True, validate=validate.Length(equal=3))
    share_txn_id = fields.Boolean(load_default=False)


class BrandUpdateSchema(StrictSchema):
    name = fields.String(validate=_NAME)
    share_txn_id = fields.Boolean()


class BrandSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    currency = fields.String()
    share_txn_id = fields.Boolean()
    created_at = fields.DateTime()


class BrandWithTokenSchema(BrandSchema):
    #: Authenticates the brand's postbacks; shown to an admin and to the brand itself.
    postback_token = fields.String()


class BrandListSchema(PageSchema):
    items = fields.List(fields.Nested(BrandSchema))
