"""Query arguments and output of reports."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from network.clock import UTC
from network.reports.service import MAX_LIMIT
from network.schemas import PageArgs, PageSchema, QueryArgs

_DATE = re.compile(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
#: `+02:00` arrives as ` 02:00` when a client forgot to URL-encode the plus sign.
_LOST_PLUS = re.compile(r"(T[0-9:.]+) ([0-9]{2}(?::?[0-9]{2})?)\Z")


class Instant(fields.Field[dt.datetime]):
    """An ISO 8601 time with an offset, or a date (its UTC midnight; for `to`, the next one)."""

    default_error_messages = {
        "invalid": "must be an ISO 8601 time with an offset, like 2026-03-01T00:00:00Z, or a date like 2026-03-01",
        "naive": "must carry an offset (Z or +HH:MM): report periods are UTC",
    }

    def __init__(self, *, end_of_day: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: A date given for the end of a period includes that day.
        self.end_of_day = end_of_day

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str) or len(value) > 64:
            raise self.make_error("invalid")
        text = value.strip()
        if _DATE.match(text):
            try:
                day = dt.date.fromisoformat(text)
            except ValueError as exc:
                raise self.make_error("invalid") from exc
            start = dt.datetime.combine(day, dt.time(), tzinfo=UTC)
            return start + dt.timedelta(days=1) if self.end_of_day else start
        text = _LOST_PLUS.sub(r"\1+\2", text)
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        if parsed.tzinfo is None:
            raise self.make_error("naive")
        return parsed.astimezone(UTC)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else value.isoformat()


class ReportArgs(QueryArgs):
    #: Start of the period (inclusive); default: 7 days before `to`.
    from_ = Instant(data_key="from", metadata={"type": "string", "example": "2026-03-01T00:00:00Z"})
    #: End of the period (exclusive; a date includes that day); default: now.
    to = Instant(end_of_day=True, metadata={"type": "string", "example": "2026-03-08T00:00:00Z"})
    #: Comma-separated dimensions: day, offer, partner, sub1..sub5, country, device.
    group_by = fields.String(load_default="", validate=validate.Length(max=200), metadata={"example": "day,offer"})
    offer_id = fields.Integer(validate=validate.Range(min=1))
    #: Admin, finance and brands (a partner may only name itself).
    partner_id = fields.Integer(validate=validate.Range(min=1))
    country = fields.String(validate=validate.Regexp(r"^[A-Za-z]{2}$"), metadata={"example": "US"})
    #: Rows per page; default 1000 (CSV: the maximum).
    limit = fields.Integer(validate=validate.Range(min=1, max=MAX_LIMIT))
    #: The `next_after` of the previous page: the position of the next row (as in every list).
    after = fields.Integer(
        validate=validate.Range(min=0), metadata={"description": "The next_after of the previous page"}
    )
    #: The older name of `after`.
    offset = fields.Integer(validate=validate.Range(min=0), metadata={"description": "The older name of after"})
    #: Another way to ask for CSV than `Accept: text/csv` (a link in a browser).
    format = fields.String(validate=validate.OneOf(("json", "csv")))

    @validates_schema
    def _one_cursor(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "after" in data and "offset" in data:
            raise ValidationError("give after or offset, not both", field_name="after")

    @post_load
    def _start(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        data["offset"] = data.pop("after", data.get("offset", 0))
        return data


class ReportRowSchema(Schema):
    """One row; only the dimensions asked for, and only the metrics the caller may see."""

    day = fields.String(metadata={"example": "2026-03-01"})
    offer_id = fields.Integer()
    partner_id = fields.Integer()
    sub1 = fields.String(allow_none=True)
    sub2 = fields.String(allow_none=True)
    sub3 = fields.String(allow_none=True)
    sub4 = fields.String(allow_none=True)
    sub5 = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    device = fields.String(allow_none=True)
    currency = fields.String(metadata={"example": "USD"})
    clicks = fields.Integer()
    unique_clicks = fields.Integer()
    impressions = fields.Integer(allow_none=True)
    conversions = fields.Integer()
    approved = fields.Integer()
    sale_amount = fields.String(metadata={"example": "80.00"})
    revenue = fields.String(metadata={"example": "12.00"})
    payout = fields.String(metadata={"example": "8.00"})
    profit = fields.String(metadata={"example": "4.00"})
    cr = fields.String(allow_none=True, metadata={"description": "percent", "example": "2.50"})
    epc = fields.String(allow_none=True, metadata={"example": "0.2000"})
    ctr = fields.String(allow_none=True, metadata={"description": "percent", "example": "1.25"})
    roas = fields.String(allow_none=True, metadata={"example": "6.67"})
    #: Grouped by partner (and maybe offer) only: distinct customers of the period's counted
    #: conversions, and what they sold and earned the partner per customer (CLV over the period).
    customers = fields.Integer()
    sale_amount_per_customer = fields.String(allow_none=True, metadata={"example": "120.0000"})
    payout_per_customer = fields.String(allow_none=True, metadata={"example": "12.0000"})


class ReportSchema(Schema):
    items = fields.List(fields.Nested(ReportRowSchema))
    #: The whole period's figures, one row per currency (not paged).
    totals = fields.List(fields.Nested(ReportRowSchema))
    from_ = fields.String(data_key="from")
    to = fields.String()
    group_by = fields.List(fields.String())
    limit = fields.Integer()
    offset = fields.Integer()
    #: Pass as `after` for the next page; null on the last page.
    next_after = fields.Integer(allow_none=True)
    #: The same as `next_after`, under its older name.
    next_offset = fields.Integer(allow_none=True)


class MarginArgs(PageArgs):
    #: Start of the period (inclusive); default: 7 days before `to`.
    from_ = Instant(data_key="from", metadata={"type": "string", "example": "2026-03-01T00:00:00Z"})
    #: End of the period (exclusive; a date includes that day); default: now.
    to = Instant(end_of_day=True, metadata={"type": "string", "example": "2026-03-08T00:00:00Z"})
    #: Comma-separated dimensions: day, brand, offer, partner.
    group_by = fields.String(load_default="", validate=validate.Length(max=200), metadata={"example": "brand,offer"})


class MarginRowSchema(Schema):
    day = fields.String(allow_none=True)
    brand = fields.Integer(allow_none=True)
    offer = fields.Integer(allow_none=True)
    partner = fields.Integer(allow_none=True)
    currency = fields.String()
    #: What brands owe (approved revenue, CPC and CPM, net of reversals).
    revenue = fields.String()
    #: What partners earn (commissions, CPC and CPM, net of reversals and clawbacks).
    payout = fields.String()
    profit = fields.String()


class MarginSchema(PageSchema):
    items = fields.List(fields.Nested(MarginRowSchema))
    #: The dimensions margins cannot be grouped by, and why.
    lacking = fields.String()
