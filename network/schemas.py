"""Schema pieces shared by every domain: strict input base, paging, money strings."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

#: Upper bound of any page; larger requests are refused (RELIABILITY.md case 18).
MAX_PAGE = 500


class StrictSchema(Schema):
    """Input schema: unknown fields are an error, so nothing can be mass-assigned."""

    class Meta:
        unknown = RAISE


class PageArgs(StrictSchema):
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=MAX_PAGE))
    #: Opaque cursor: the last id of the previous page.
    after = fields.Integer(load_default=None, validate=validate.Range(min=0))


def Amount(**kwargs: object) -> fields.String:  # noqa: N802 - reads like a field class
    """A money amount: a decimal string in major units, parsed against the object's currency later."""
    return fields.String(validate=validate.Length(max=32), metadata={"example": "12.50"}, **kwargs)


def Percent(**kwargs: object) -> fields.String:  # noqa: N802
    """A percentage as a decimal string ("12.5")."""
    return fields.String(validate=validate.Length(max=16), metadata={"example": "12.5"}, **kwargs)


def page(items: list, limit: int) -> dict:
    """Return a list response with its paging fields."""
    next_after = items[-1]["id"] if len(items) == limit and items else None
    return {"items": items, "next_after": next_after, "limit": limit}
