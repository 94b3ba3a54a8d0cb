"""Schema pieces shared by every domain: strict input base, paging, money strings."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from network.db import DEFAULT_PAGE, MAX_PAGE


class StrictSchema(Schema):
    """Input schema: unknown fields are an error, so nothing can be mass-assigned."""

    class Meta:
        unknown = RAISE


class PageArgs(StrictSchema):
    """Query arguments of every list: a bounded page size and an opaque cursor."""

    limit = fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    #: Opaque cursor: the `next_after` of the previous page.
    after = fields.Integer(load_default=None, validate=validate.Range(min=0))


class PageSchema(Schema):
    """Paging fields that stand beside `items` in every list response."""

    #: Pass as `after` to get the next page; null on the last page.
    next_after = fields.Integer(allow_none=True)
    limit = fields.Integer()


def Amount(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    """Return a money field: a decimal string in major units, parsed against the object's currency later."""
    return fields.String(validate=validate.Length(max=32), metadata={"example": "12.50"}, **kwargs)


def Percent(**kwargs: Any) -> fields.String:  # noqa: N802
    """Return a percentage field: a decimal string ("12.5")."""
    return fields.String(validate=validate.Length(max=16), metadata={"example": "12.5"}, **kwargs)


def page(items: list[Any], limit: int, *, key: str = "id") -> dict[str, Any]:
    """Return a list response: the items and the cursor of the next page (None on the last)."""
    last = items[-1] if items else None
    next_after = None
    if last is not None and len(items) >= limit:
        next_after = last[key] if isinstance(last, dict) else getattr(last, key)
    return {"items": items, "next_after": next_after, "limit": limit}


def page_at(items: list[Any], limit: int, start: int) -> dict[str, Any]:
    """Return a list response for a page starting at position `start` (rows with no id: the cursor is a position)."""
    next_after = start + len(items) if len(items) >= limit else None
    return {"items": items, "next_after": next_after, "limit": limit}


def attrs(obj: object, schema: type[Schema]) -> dict[str, Any]:
    """Return the attributes of `obj` that `schema` declares, undumped (the response schema dumps them)."""
    return {name: getattr(obj, name) for name in schema._declared_fields}
