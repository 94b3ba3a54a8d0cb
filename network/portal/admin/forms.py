"""The admin console's forms (the invitation and application decision forms are the portal's own)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from network.auth import Role


def _id_or_none(value: object) -> int | None:
    return int(str(value)) if value not in (None, "") and str(value).isdigit() else None


class BrandForm(FlaskForm):
    name = StringField("Name", [DataRequired("give the brand's name"), Length(max=200)])
    currency = StringField(
        "Currency",
        [DataRequired("give a currency"), Regexp(r"^[A-Za-z]{3}$", message="a three-letter ISO 4217 code")],
        description="Its offers' currency, e.g. EUR (ISO 4217).",
        default="EUR",
    )
    share_txn_id = BooleanField("Share its transaction ids with partners")
    submit = SubmitField("Create the brand")


class PartnerForm(FlaskForm):
    name = StringField("Name", [DataRequired("give the partner's name"), Length(max=200)])
    email = StringField("E-mail", [Optional(), Length(max=254)], description="Where the network writes to it.")
    submit = SubmitField("Create the partner")


class KeyForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(r.value, r.value.capitalize()) for r in Role])
    brand_id = SelectField("Brand (for a brand key)", [Optional()], coerce=_id_or_none, validate_choice=False)
    partner_id = IntegerField("Partner id (for a partner key)", [Optional(), NumberRange(min=1, max=2**31 - 1)])
    label = StringField("Label", [Optional(), Length(max=200)], description="What the key is for, to know it later.")
    submit = SubmitField("Issue the key")


class StatusForm(FlaskForm):
    status = SelectField(
        "New status",
        choices=[SelectChoice("active", "Active"), SelectChoice("suspended", "Suspended")],
    )
    submit = SubmitField("Change the status")


class ConfirmForm(FlaskForm):
    submit = SubmitField("Yes")
