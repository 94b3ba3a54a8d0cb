"""Input and output schemas for tracking links."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from network.schemas import PageArgs, PageSchema, StrictSchema, column_length
from network.tracking.models import Link


def _sub() -> fields.String:
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(max=column_length(Link.sub1)))


class LinkCreateSchema(StrictSchema):
    offer_id = fields.Integer(required=True)
    sub1 = _sub()
    sub2 = _sub()
    sub3 = _sub()
    sub4 = _sub()
    sub5 = _sub()
    #: Optional default deep link; must lie within the offer's allowed_domains.
    deep_link = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=4000))


class LinkSchema(Schema):
    id = fields.Integer()
    code = fields.String()
    #: The tracking URL to publish: {PUBLIC_BASE_URL}/c/{code}.
    url = fields.String()
    #: The impression pixel: {PUBLIC_BASE_URL}/i/{code}.
    impression_url = fields.String()
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    sub1 = fields.String(allow_none=True)
    sub2 = fields.String(allow_none=True)
    sub3 = fields.String(allow_none=True)
    sub4 = fields.String(allow_none=True)
    sub5 = fields.String(allow_none=True)
    deep_link = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LinkListSchema(PageSchema):
    items = fields.List(fields.Nested(LinkSchema))


class LinkListArgs(PageArgs):
    offer_id = fields.Integer()


def dump_link(link: Link, base_url: str) -> dict[str, Any]:
    """Return a link with its public tracking and impression URLs."""
    base = base_url.rstrip("/")
    return {
        "id": link.id,
        "code": link.code,
        "url": f"{base}/c/{link.code}",
        "impression_url": f"{base}/i/{link.code}",
        "offer_id": link.offer_id,
        "partner_id": link.partner_id,
        "sub1": link.sub1,
        "sub2": link.sub2,
        "sub3": link.sub3,
        "sub4": link.sub4,
        "sub5": link.sub5,
        "deep_link": link.deep_link,
        "created_at": link.created_at,
    }
