"""One form class per form of the web app; each carries Flask-WTF's CSRF token."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, EqualTo, Length, Optional

from network.accounts.users import MAX_PASSWORD, MIN_PASSWORD

_EMAIL = [DataRequired(), Length(max=320)]


def current_password_field(label: str) -> Any:
    """A field for the password the user has now (browsers offer the saved one)."""
    return PasswordField(
        label, [DataRequired(), Length(max=MAX_PASSWORD)], render_kw={"autocomplete": "current-password"}
    )


def new_password_field(label: str) -> Any:
    """A field for a password being chosen, with its length rule told beside it."""
    return PasswordField(
        label,
        [DataRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)],
        description=f"At least {MIN_PASSWORD} characters.",
        render_kw={"autocomplete": "new-password"},
    )


def repeat_field(label: str, of: str) -> Any:
    """A field that must repeat the field named `of`."""
    return PasswordField(
        label, [DataRequired(), EqualTo(of, "the passwords differ")], render_kw={"autocomplete": "new-password"}
    )


class SignInForm(FlaskForm):
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "username"})
    password = current_password_field("Password")
    submit = SubmitField("Sign in")


class SignUpForm(FlaskForm):
    name = StringField("Your name or company", [DataRequired(), Length(max=200)])
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "email"})
    website = URLField("Website", [DataRequired(), URL(require_tld=False), Length(max=500)])
    traffic_sources = TextAreaField(
        "Traffic sources", [DataRequired(), Length(max=2000)], description="How you bring visitors: sites, e-mail..."
    )
    password = new_password_field("Password")
    confirm = repeat_field("Repeat the password", "password")
    submit = SubmitField("Apply")


class ResetRequestForm(FlaskForm):
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "email"})
    submit = SubmitField("Send me a link")


class SetPasswordForm(FlaskForm):
    password = new_password_field("New password")
    confirm = repeat_field("Repeat the password", "password")
    submit = SubmitField("Set the password")


class ChangePasswordForm(FlaskForm):
    current_password = current_password_field("Current password")
    new_password = new_password_field("New password")
    confirm = repeat_field("Repeat the new password", "new_password")
    submit = SubmitField("Change the password")


class InviteForm(FlaskForm):
    email = EmailField("E-mail", _EMAIL)
    role = SelectField(
        "Role",
        choices=[SelectChoice("brand", "Brand"), SelectChoice("finance", "Finance"), SelectChoice("admin", "Admin")],
    )
    brand_id = SelectField(
        "Brand (for a brand user)", [Optional()], coerce=lambda v: int(v) if v else None, validate_choice=False
    )
    submit = SubmitField("Send the invitation")


class DecisionForm(FlaskForm):
    approve = SubmitField("Approve")
    reject = SubmitField("Reject")


class SignOutForm(FlaskForm):
    submit = SubmitField("Sign out")
