"""Schema pieces shared by every domain: strict input base, paging, money strings.

Every input schema derives from StrictSchema, and so gets the input rules when its fields are
bound, without declaring anything: unknown fields are refused, integers are JSON integers (never
0.5, "30" or true), and text obeys network.text's rule and has a maximum length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate

from network import text
from network.db import DEFAULT_PAGE, MAX_PAGE

#: The longest text a string field without a length of its own accepts (the longest URL we keep).
MAX_TEXT = 4000
#: An integer in a query string: ASCII digits, maybe signed (int() would also take " 30", "3_0", "٣٠").
_QUERY_INTEGER = re.compile(r"-?[0-9]{1,30}")


def column_length(attribute: Any) -> int:
    """Return the length of a String(n) column (`Partner.name` -> 200), so an input bound follows the column."""
    length = attribute.property.columns[0].type.length
    if length is None:
        raise TypeError(f"{attribute} has no length")
    return int(length)


class _TextRule(validate.Validator):
    """Refuse control characters and lone surrogates (network.text); tab and newline only in free text."""

    def __init__(self, *, free_text: bool) -> None:
        self.free_text = free_text

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            why = text.problem(value, free_text=self.free_text)
            if why is not None:
                raise ValidationError(why)
        return value


def _bounded(field: fields.Field) -> bool:
    return any(
        isinstance(v, validate.OneOf) or (isinstance(v, validate.Length) and (v.max is not None or v.equal is not None))
        for v in field.validators
    )


def apply_input_rules(field: fields.Field) -> None:
    """Give an input field the network's rules: strict integers; for text, the text rule and a length."""
    if isinstance(field, fields.Integer):
        field.strict = True
    elif isinstance(field, fields.String | fields.Raw):
        rules: list[Any] = [_TextRule(free_text=bool(field.metadata.get("free_text")))]
        if isinstance(field, fields.String) and not _bounded(field):
            rules.append(validate.Length(max=MAX_TEXT))
        # Checked first: a value that may not be stored is refused before anything looks into it.
        field.validators = [*rules, *field.validators]
    if isinstance(field, fields.List):
        apply_input_rules(field.inner)
    elif isinstance(field, fields.Dict):
        for part in (field.key_field, field.value_field):
            if part is not None:
                apply_input_rules(part)


class StrictSchema(Schema):
    """Input schema: unknown fields are an error, so nothing can be mass-assigned; every field gets
    the input rules (`apply_input_rules`)."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        apply_input_rules(field_obj)


class QueryArgs(StrictSchema):
    """Query-string arguments: the same rules, an integer being given as its ASCII digits."""

    @pre_load
    def _integers_from_text(self, data: Mapping[str, Any], **_kwargs: Any) -> dict[str, Any]:
        values = {key: data[key] for key in data}
        for name, field in self.load_fields.items():
            key = field.data_key or name
            value = values.get(key)
            if isinstance(field, fields.Integer) and isinstance(value, str) and _QUERY_INTEGER.fullmatch(value):
                values[key] = int(value)
        return values


class PageArgs(QueryArgs):
    """Query arguments of every list: a bounded page size and an opaque cursor."""

    limit = fields.Integer(load_default=DEFAULT_PAGE, validate=validate.Range(min=1, max=MAX_PAGE))
    #: Opaque cursor: the `next_after` of the previous page.
    after = fields.Integer(load_default=None, validate=validate.Range(min=0))


class PageSchema(Schema):
    """Paging fields that stand beside `items` in every list response."""

    #: Pass as `after` to get the next page; null on the last page.
    next_after = fields.Integer(allow_none=True)
    limit = fields.Integer()


#: An empty amount or percentage is refused: it is not zero.
_NOT_EMPTY = validate.Length(min=1, error="must not be empty")


def Amount(**kwargs: Any) -> fields.String:  # noqa: N802 - reads like a field class
    """Return a money field: a decimal string in major units, parsed against the object's currency later."""
    return fields.String(validate=[_NOT_EMPTY, validate.Length(max=32)], metadata={"example": "12.50"}, **kwargs)


def Percent(**kwargs: Any) -> fields.String:  # noqa: N802
    """Return a percentage field: a decimal string ("12.5")."""
    return fields.String(validate=[_NOT_EMPTY, validate.Length(max=16)], metadata={"example": "12.5"}, **kwargs)


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
