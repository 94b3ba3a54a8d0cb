"""The finance console's forms: list filters (GET, no token: they change nothing) and the forms that move
money, each with Flask-WTF's CSRF token."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    Form,
    HiddenField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from network import money, text
from network.payouts.models import EntryKind, LedgerEntry, Payout, PayoutStatus
from network.payouts.rules import ACTIONS
from network.schemas import column_length

STATUS_WORDS = {s.value: s.value.replace("_", " ").capitalize() for s in PayoutStatus}
#: What each bulk or single decision is called on its button and in its confirmation.
ACTION_WORDS = {"approve": "Approve", "hold": "Hold", "unhold": "Release from hold", "cancel": "Cancel"}
assert set(ACTION_WORDS) == set(ACTIONS)


class TextRule:
    """The network's one text rule (network/text.py), as the API applies it: no control characters."""

    def __init__(self, *, free_text: bool = False) -> None:
        self.free_text = free_text

    def __call__(self, form: Any, field: Any) -> None:
        why = text.problem(field.data or "", free_text=self.free_text)
        if why is not None:
            raise ValidationError(why)


def _digits(value: Any) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 19 else None


def _only_digits(field: Any) -> None:
    if field.data and _digits(field.data) is None:
        raise ValidationError("must be a number from the list")


class PayoutFilters(Form):
    """The payouts list's filters; the list starts on the payouts awaiting approval."""

    status = SelectField(
        "Status",
        default=PayoutStatus.PENDING_APPROVAL.value,
        choices=[SelectChoice("", "Any status"), *[SelectChoice(k, v) for k, v in STATUS_WORDS.items()]],
    )
    partner_id = SelectField("Partner", default="", validate_choice=False)
    run_id = StringField("Built by run", [Optional(), Length(max=18)], description="A payout run's number.")

    def validate_partner_id(self, field: Any) -> None:
        _only_digits(field)

    def validate_run_id(self, field: Any) -> None:
        if field.data and _digits(field.data) is None:
            raise ValidationError("must be a run number")


class BulkForm(FlaskForm):
    """Approve, hold or cancel the payouts ticked in the list; `confirmed` is set by the confirmation page."""

    payout_id = SelectMultipleField("Payouts", coerce=_digits, validate_choice=False)
    action = SelectField("Decision", choices=[SelectChoice(a, w) for a, w in ACTION_WORDS.items()])
    note = StringField(
        "Note (optional)",
        [Optional(), Length(max=column_length(Payout.note)), TextRule(free_text=True)],
        description="Kept with each payout and in the audit log.",
    )
    confirmed = HiddenField(default="")

    def validate_payout_id(self, field: Any) -> None:
        if not field.data:
            raise ValidationError("tick at least one payout")
        if None in field.data:
            raise ValidationError("a payout number is not valid")


class DecisionForm(FlaskForm):
    """One payout's decision, from its own page."""

    action = SelectField("Decision", choices=[SelectChoice(a, w) for a, w in ACTION_WORDS.items()])
    note = StringField(
        "Note (optional)",
        [Optional(), Length(max=column_length(Payout.note)), TextRule(free_text=True)],
        description="Kept with the payout and in the audit log.",
    )


class RunForm(FlaskForm):
    submit = SubmitField("Run payouts now")


class RecoverForm(FlaskForm):
    submit = SubmitField("Retry the unknown outcomes now")


class RebuildForm(FlaskForm):
    submit = SubmitField("Build payouts again from the available balances")


class LedgerFilters(Form):
    currency = SelectField(
        "Currency",
        default="",
        choices=[SelectChoice("", "Any currency"), *[SelectChoice(c, c) for c in sorted(money.CURRENCIES)]],
    )
    kind = SelectField(
        "Kind",
        default="",
        choices=[SelectChoice("", "Any kind"), *[SelectChoice(k.value, k.value.replace("_", " ")) for k in EntryKind]],
    )


class AdjustmentForm(FlaskForm):
    """A manual correction: signed, in major units, with the memo that says why."""

    currency = SelectField("Currency", choices=[SelectChoice(c, c) for c in sorted(money.CURRENCIES)])
    amount = StringField(
        "Amount",
        [DataRequired("enter an amount"), Length(max=24), TextRule()],
        description='In the currency\'s units, signed: "25.00" adds to the balance, "-5.00" takes back.',
    )
    memo = TextAreaField(
        "Memo",
        [DataRequired("say why"), Length(max=column_length(LedgerEntry.memo)), TextRule(free_text=True)],
        description="Why: kept on the entry, shown to the partner, and in the audit log.",
    )
    submit = SubmitField("Book the adjustment")


class AuditFilters(Form):
    action = SelectField("Action", default="", validate_choice=False)
    object_type = SelectField(
        "Object",
        default="",
        choices=[
            SelectChoice("", "Any"),
            SelectChoice("payout", "Payout"),
            SelectChoice("partner", "Partner"),
            SelectChoice("payout_run", "Payout run"),
        ],
    )
    object_id = StringField("Its number", [Optional(), Length(max=18)])
    actor = StringField(
        "Who", [Optional(), Length(max=64), TextRule()], description='As logged: "finance:user:3", "stripe".'
    )

    def validate_object_id(self, field: Any) -> None:
        if field.data and _digits(field.data) is None:
            raise ValidationError("must be a number")
