"""Input and output of the customers and coupons API."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from network.customers.models import Coupon, Customer
from network.schemas import PageArgs, PageSchema, StrictSchema, column_length


class CouponInSchema(StrictSchema):
    offer_id = fields.Integer(required=True)
    #: The partner whose sales the code brings.
    partner_id = fields.Integer(required=True)
    #: Letters, digits, `-` and `_`; unique per brand whatever the case.
    code = fields.String(required=True, validate=validate.Length(min=1, max=column_length(Coupon.code)))


class CouponSchema(Schema):
    id = fields.Integer()
    brand_id = fields.Integer()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    #: The link its conversions are the link's of, in reports.
    link_id = fields.Integer()
    code = fields.String()
    created_at = fields.DateTime()


class CouponListSchema(PageSchema):
    items = fields.List(fields.Nested(CouponSchema))


class CouponListArgs(PageArgs):
    offer_id = fields.Integer()
    partner_id = fields.Integer()


class CustomerSchema(Schema):
    #: The binding's id (the path's `{id}`).
    id = fields.Integer()
    brand_id = fields.Integer()
    #: The brand's own id for its customer.
    customer_id = fields.String()
    partner_id = fields.Integer()
    link_id = fields.Integer()
    offer_id = fields.Integer()
    bound_at = fields.DateTime()
    conversion_id = fields.Integer(allow_none=True)
    moved_at = fields.DateTime(allow_none=True)


class CustomerListSchema(PageSchema):
    items = fields.List(fields.Nested(CustomerSchema))


class CustomerListArgs(PageArgs):
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    customer_id = fields.String(validate=validate.Length(max=column_length(Customer.customer_id)))


class MoveInSchema(StrictSchema):
    #: The partner the customer's later conversions go to.
    partner_id = fields.Integer(required=True)


def dump_coupon(coupon: Coupon) -> dict[str, Any]:
    """Return a coupon as every role that may see it sees it."""
    return {name: getattr(coupon, name) for name in CouponSchema._declared_fields}


def dump_customer(customer: Customer) -> dict[str, Any]:
    """Return a bound customer as every role that may see it sees it."""
    return {name: getattr(customer, name) for name in CustomerSchema._declared_fields}
