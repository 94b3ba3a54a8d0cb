"""Input and output schemas for dead letters."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from network.deadletters.isolate import SOURCES
from network.schemas import PageArgs, PageSchema, StrictSchema


class DeadLetterListArgs(PageArgs):
    source = fields.String(validate=validate.OneOf(SOURCES))


class NoArgs(StrictSchema):
    """No query parameter is accepted."""


class DeadLetterSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    source = fields.String(metadata={"description": "The writer: " + ", ".join(SOURCES)})
    reason = fields.String(metadata={"description": "The database error's class and message"})
    payload = fields.String(metadata={"description": "The refused row as JSON (ASCII; cut past 16 KB)"})


class DeadLetterListSchema(PageSchema):
    items = fields.List(fields.Nested(DeadLetterSchema))


class DeadLetterSummarySchema(Schema):
    counts = fields.Dict(keys=fields.String(), values=fields.Integer(), metadata={"description": "By writer"})
    total = fields.Integer()
