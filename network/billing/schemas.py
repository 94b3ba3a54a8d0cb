"""Input and output schemas of invoices and brand balances."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from network import money
from network.billing import rules
from network.billing.models import Invoice, InvoiceLine, InvoiceStatus
from network.schemas import PageArgs, PageSchema, StrictSchema, page_at

INVOICE_STATUSES = tuple(s.value for s in InvoiceStatus)


class InvoiceListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(INVOICE_STATUSES))
    brand_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    currency = fields.String(load_default=None, validate=validate.OneOf(sorted(money.CURRENCIES)))


class VoidSchema(StrictSchema):
    reason = fields.String(load_default=None, validate=validate.Length(max=255))


class PaidSchema(StrictSchema):
    #: The payment's reference (a bank transfer's id): required, so every paid invoice can be traced.
    reference = fields.String(required=True, validate=validate.Length(min=1, max=255))


class InvoiceRunInSchema(StrictSchema):
    """No fields: a run bills every entry booked until now."""


class InvoiceLineSchema(Schema):
    kind = fields.String(metadata={"description": "revenue, reversal (a credit), cpc, cpm or adjustment"})
    offer_id = fields.Integer(allow_none=True)
    event_id = fields.Integer(allow_none=True)
    quantity = fields.Integer()
    unit = fields.String(allow_none=True, metadata={"description": "Price of one (CPM: none); null when it varied"})
    amount = fields.String()


class InvoiceSummarySchema(Schema):
    id = fields.Integer()
    number = fields.String(allow_none=True, metadata={"example": "INV-000042"})
    brand_id = fields.Integer()
    currency = fields.String()
    amount = fields.String()
    entry_count = fields.Integer()
    status = fields.String(metadata={"description": "draft, open, paid, void or uncollectible"})
    period_end = fields.DateTime()
    created_at = fields.DateTime()
    issued_at = fields.DateTime(allow_none=True)
    due_at = fields.DateTime(allow_none=True)
    gateway = fields.String(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    paid_reference = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    hosted_url = fields.String(allow_none=True, metadata={"description": "Stripe's page for the invoice"})
    pdf_url = fields.String(allow_none=True, metadata={"description": "The PDF (manual gateway)"})


class InvoiceSchema(InvoiceSummarySchema):
    lines = fields.List(fields.Nested(InvoiceLineSchema))


class InvoiceListSchema(PageSchema):
    items = fields.List(fields.Nested(InvoiceSummarySchema))


class InvoiceRunSchema(Schema):
    invoices = fields.List(fields.Nested(InvoiceSummarySchema))


class BrandBalanceLineSchema(Schema):
    currency = fields.String()
    #: The sum of the brand's ledger: unbilled + invoiced + paid.
    balance = fields.String()
    #: On no issued invoice yet (drafts included).
    unbilled = fields.String()
    #: On issued invoices not paid (open or uncollectible).
    invoiced = fields.String()
    paid = fields.String()
    #: Of unbilled, what drafts hold.
    in_draft = fields.String()
    #: Of invoiced, what is past its due date.
    overdue = fields.String()


class CreditSchema(Schema):
    currency = fields.String(metadata={"description": "The brand's currency, which the limit is in"})
    limit = fields.String(allow_none=True, metadata={"description": "Null: no limit"})
    #: Unbilled plus invoiced and unpaid, in that currency.
    exposure = fields.String()
    over_limit = fields.Boolean()


class BrandBillingSchema(PageSchema):
    brand_id = fields.Integer()
    payment_terms_days = fields.Integer()
    items = fields.List(fields.Nested(BrandBalanceLineSchema))
    credit = fields.Nested(CreditSchema)


class BillingTermsSchema(StrictSchema):
    payment_terms_days = fields.Integer(validate=validate.Range(min=0, max=365))
    credit_limit = fields.String(allow_none=True, metadata={"description": "Major units; null removes the limit"})
    billing_email = fields.Email(allow_none=True)
    billing_address = fields.String(allow_none=True, validate=validate.Length(max=1000))


class PrepaymentInSchema(StrictSchema):
    currency = fields.String(required=True, validate=validate.OneOf(sorted(money.CURRENCIES)))
    amount = fields.String(required=True, metadata={"example": "500.00"})
    memo = fields.String(load_default=None, validate=validate.Length(max=255))


class PrepaymentSchema(Schema):
    entry_id = fields.Integer()
    brand_id = fields.Integer()


def dump_invoice(
    invoice: Invoice, lines: list[InvoiceLine] | None = None, *, pdf_url: str | None = None
) -> dict[str, Any]:
    """Return an invoice as the API shows it (money as decimal strings)."""
    fmt = lambda minor: money.format_amount(minor, invoice.currency)  # noqa: E731
    skip = {"number", "amount", "lines", "pdf_url"}
    data = {name: getattr(invoice, name) for name in InvoiceSchema._declared_fields if name not in skip}
    data |= {"number": rules.invoice_label(invoice.number), "amount": fmt(invoice.amount_minor), "pdf_url": pdf_url}
    if lines is not None:
        data["lines"] = [
            {
                "kind": line.kind, "offer_id": line.offer_id, "event_id": line.event_id, "quantity": line.quantity,
                "unit": fmt(line.unit_minor) if line.unit_minor is not None else None, "amount": fmt(line.amount_minor),
            }
            for line in lines
        ]  # fmt: skip
    return data


def dump_balances(
    brand_id: int,
    terms_days: int,
    rows: list[dict[str, Any]],
    credit: dict[str, Any] | None = None,
    *,
    limit: int = 100,
    after: int | None = None,
) -> dict[str, Any]:
    """Return a brand's billing: its terms, its balances per currency and its credit status."""
    start = after or 0
    items = [
        {
            "currency": r["currency"],
            **{k: money.format_amount(v, r["currency"]) for k, v in r.items() if k != "currency"},
        }
        for r in rows[start : start + limit]
    ]
    data: dict[str, Any] = {"brand_id": brand_id, "payment_terms_days": terms_days, **page_at(items, limit, start)}
    if credit is not None:
        fmt = lambda minor: money.format_amount(minor, credit["currency"])  # noqa: E731
        data["credit"] = {
            "currency": credit["currency"],
            "limit": None if credit["limit_minor"] is None else fmt(credit["limit_minor"]),
            "exposure": fmt(credit["exposure_minor"]),
            "over_limit": credit["over_limit"],
        }
    return data
