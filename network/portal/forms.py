"""One form class per form of the web app; each carries Flask-WTF's CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField, SubmitField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, EqualTo, Length, Optional

from network.accounts.users import MAX_PASSWORD, MIN_PASSWORD

_EMAIL = [DataRequired(), Length(max=320)]
_NEW_PASSWORD = [DataRequired(), Length(min=MIN_PASSWORD, max=MAX_PASSWORD)]
_NEW_PASSWORD_HINT = f"At least {MIN_PASSWORD} characters."


class SignInForm(FlaskForm):
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "username"})
    password = PasswordField(
        "Password", [DataRequired(), Length(max=MAX_PASSWORD)], render_kw={"autocomplete": "current-password"}
    )
    submit = SubmitField("Sign in")


class SignUpForm(FlaskForm):
    name = StringField("Your name or company", [DataRequired(), Length(max=200)])
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "email"})
    website = URLField("Website", [DataRequired(), URL(require_tld=False), Length(max=500)])
    traffic_sources = TextAreaField(
        "Traffic sources", [DataRequired(), Length(max=2000)], description="How you bring visitors: sites, e-mail..."
    )
    password = PasswordField(
        "Password", _NEW_PASSWORD, description=_NEW_PASSWORD_HINT, render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        "Repeat the password",
        [DataRequired(), EqualTo("password", "the passwords differ")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Apply")


class ResetRequestForm(FlaskForm):
    email = EmailField("E-mail", _EMAIL, render_kw={"autocomplete": "email"})
    submit = SubmitField("Send me a link")


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password", _NEW_PASSWORD, description=_NEW_PASSWORD_HINT, render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        "Repeat the password",
        [DataRequired(), EqualTo("password", "the passwords differ")],
        render_kw={"autocomplete": "new-password"},
    )
    submit = SubmitField("Set the password")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", [DataRequired(), Length(max=MAX_PASSWORD)], render_kw={"autocomplete": "current-password"}
    )
    new_password = PasswordField(
        "New password", _NEW_PASSWORD, description=_NEW_PASSWORD_HINT, render_kw={"autocomplete": "new-password"}
    )
    confirm = PasswordField(
        "Repeat the new password",
        [DataRequired(), EqualTo("new_password", "the passwords differ")],
        render_kw={"autocomplete": "new-password"},
    )
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
