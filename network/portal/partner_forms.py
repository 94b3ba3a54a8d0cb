"""The partner portal's working forms: apply to an offer, build a link, postback settings and its test."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional

#: As long as a link's sub id column (tracking.models.Link.sub1).
_SUB = [Optional(), Length(max=255)]


def int_or_none(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


class ApplyForm(FlaskForm):
    submit = SubmitField("Apply")


class LinkForm(FlaskForm):
    offer_id = SelectField("Offer", [DataRequired("pick an offer")], coerce=int_or_none, validate_choice=True)
    sub1 = StringField("sub1", _SUB)
    sub2 = StringField("sub2", _SUB)
    sub3 = StringField("sub3", _SUB)
    sub4 = StringField("sub4", _SUB)
    sub5 = StringField("sub5", _SUB)
    deep_link = StringField(
        "Deep link (optional)",
        [Optional(), Length(max=4000)],
        description="A page of the offer's own site to send the visitor to instead of its landing page.",
    )
    submit = SubmitField("Build the link")


class PostbackForm(FlaskForm):
    postback_url = StringField(
        "Postback URL",
        [Optional(), Length(max=2000)],
        description="Called on every conversion and status change; leave empty to stop postbacks.",
    )
    postback_method = SelectField(
        "Method",
        choices=[
            SelectChoice("get", "GET: the macros filled into the URL"),
            SelectChoice("post", "POST: a signed JSON body"),
        ],
    )
    submit = SubmitField("Save")


class PostbackTestForm(FlaskForm):
    submit = SubmitField("Send a test")
