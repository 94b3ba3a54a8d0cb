"""Input and output schemas for balances, the ledger, payouts, payout runs and Stripe onboarding."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from network import money
from network.payouts.models import EntryKind, LedgerEntry, Payout, PayoutStatus
from network.schemas import Amount, PageArgs, PageSchema, StrictSchema, column_length, page_at

PAYOUT_STATUSES = tuple(s.value for s in PayoutStatus)
ENTRY_KINDS = tuple(k.value for k in EntryKind)


class PayoutListArgs(PageArgs):
    status = fields.String(load_default=None, validate=validate.OneOf(PAYOUT_STATUSES))
    partner_id = fields.Integer(load_default=None, validate=validate.Range(min=1))
    run_id = fields.Integer(load_default=None, validate=validate.Range(min=1))


class LedgerArgs(PageArgs):
    currency = fields.String(load_default=None, validate=validate.OneOf(sorted(money.CURRENCIES)))
    kind = fields.String(load_default=None, validate=validate.OneOf(ENTRY_KINDS))


class DecisionSchema(StrictSchema):
    note = fields.String(
        load_default=None, validate=validate.Length(max=column_length(Payout.note)), metadata={"free_text": True}
    )


class PayoutRunInSchema(StrictSchema):
    """A payout run takes no parameters: it matures, builds and settles what is due."""


class AdjustmentInSchema(StrictSchema):
    currency = fields.String(required=True, validate=validate.OneOf(sorted(money.CURRENCIES)))
    #: Signed, in major units: "-5.00" takes money back.
    amount = Amount(required=True)
    memo = fields.String(
        required=True,
        validate=validate.Length(min=1, max=column_length(LedgerEntry.memo)),
        metadata={"free_text": True},
    )


class PayoutSchema(Schema):
    id = fields.Integer()
    partner_id = fields.Integer()
    currency = fields.String()
    amount = fields.String()
    entry_count = fields.Integer()
    status = fields.String()
    run_id = fields.Integer(allow_none=True)
    created_at = fields.DateTime()
    approved_at = fields.DateTime(allow_none=True)
    approved_by = fields.String(allow_none=True)
    decided_at = fields.DateTime(allow_none=True)
    decided_by = fields.String(allow_none=True)
    note = fields.String(allow_none=True)
    gateway = fields.String(allow_none=True)
    idempotency_key = fields.String(allow_none=True)
    transfer_group = fields.String(allow_none=True)
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    reference = fields.String(allow_none=True)
    paid_at = fields.DateTime(allow_none=True)
    batch_id = fields.Integer(allow_none=True)
    failure_reason = fields.String(allow_none=True)
    failed_at = fields.DateTime(allow_none=True)
    reversed_at = fields.DateTime(allow_none=True)


class PayoutListSchema(PageSchema):
    items = fields.List(fields.Nested(PayoutSchema))


class PayoutRunSchema(Schema):
    id = fields.Integer()
    matured = fields.Integer()
    #: The payouts this run built (pending_approval).
    payouts = fields.List(fields.Nested(PayoutSchema))
    #: The approved payouts this run sent, with their outcome.
    settled = fields.List(fields.Nested(PayoutSchema))
    paid = fields.Integer()
    failed = fields.Integer()
    #: Sent, outcome not known yet: recovery retries them with the same key.
    outcome_unknown = fields.Integer(data_key="unknown")
    #: The API path of the CSV this run exported (manual gateway), or null.
    export_url = fields.String(allow_none=True, metadata={"example": "/api/v1/payout-runs/7/export"})


class BalanceLineSchema(Schema):
    currency = fields.String()
    #: Commissions of pending conversions (not yet in the ledger).
    pending = fields.String()
    #: Approved and not in any payout yet (net of reversals and clawbacks).
    available = fields.String()
    #: In payouts not paid yet.
    in_payout = fields.String()
    #: Sent to the partner, net of reversed transfers.
    paid = fields.String()
    #: The sum of all ledger entries (available + in_payout).
    balance = fields.String()


class BalanceSchema(PageSchema):
    partner_id = fields.Integer()
    #: One line per currency, by currency code.
    items = fields.List(fields.Nested(BalanceLineSchema))


class LedgerEntrySchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    currency = fields.String()
    amount = fields.String()
    conversion_id = fields.Integer(allow_none=True)
    offer_id = fields.Integer(allow_none=True)
    payout_id = fields.Integer(allow_none=True)
    memo = fields.String(allow_none=True)
    created_at = fields.DateTime()


class LedgerListSchema(PageSchema):
    items = fields.List(fields.Nested(LedgerEntrySchema))


class OnboardingSchema(Schema):
    account_id = fields.String()
    url = fields.String()
    payouts_enabled = fields.Boolean()


def dump_payout(payout: Payout) -> dict[str, Any]:
    """Return a payout as the API shows it (money as a decimal string)."""
    data = {name: getattr(payout, name) for name in PayoutSchema._declared_fields if name != "amount"}
    data["amount"] = money.format_amount(payout.amount_minor, payout.currency)
    return data


def dump_entry(entry: LedgerEntry) -> dict[str, Any]:
    """Return a ledger entry as the API shows it."""
    data = {name: getattr(entry, name) for name in LedgerEntrySchema._declared_fields if name != "amount"}
    data["amount"] = money.format_amount(entry.amount_minor, entry.currency)
    return data


def dump_balance(partner_id: int, rows: list[dict[str, Any]], *, limit: int, after: int | None) -> dict[str, Any]:
    """Return a page of a partner's balances (rows by currency), every amount formatted in its currency."""
    start = after or 0
    items = [
        {"currency": r["currency"], **{k: money.format_amount(r[k], r["currency"]) for k in r if k != "currency"}}
        for r in rows[start : start + limit]
    ]
    return {"partner_id": partner_id, **page_at(items, limit, start)}


# ---- scheduled jobs (GET /jobs) ------------------------------------------------------------------


class JobListArgs(PageArgs):
    """Only the paging arguments."""


class JobStatusSchema(Schema):
    id = fields.Integer()
    job_id = fields.String(metadata={"description": "The job's stable id (`flask scheduler run-now <job_id>`)"})
    description = fields.String()
    schedule = fields.String(metadata={"description": "The trigger, in UTC"})
    next_run_at = fields.DateTime(allow_none=True)
    last_success_at = fields.DateTime(allow_none=True)
    last_success_period = fields.String(allow_none=True, metadata={"description": "The period the run was for"})
    last_success_ms = fields.Integer(allow_none=True, metadata={"description": "How long the run took"})
    last_success_outcome = fields.String(allow_none=True, metadata={"description": "What the run returned"})
    last_failure_at = fields.DateTime(allow_none=True)
    last_failure_period = fields.String(allow_none=True)
    last_failure_reason = fields.String(allow_none=True)
    failures = fields.Integer(metadata={"description": "Failed tries since the last success"})


class JobListSchema(PageSchema):
    items = fields.List(fields.Nested(JobStatusSchema))
