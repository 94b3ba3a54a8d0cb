"""Sign-in, sign-out, partner sign-up, password reset, invitations and the profile."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, logout_user

from network import web
from network.accounts import users
from network.auth import Role
from network.errors import Conflict, Unauthorized, ValidationError
from network.portal.common import link, role_required, send_after_commit, settings, start_session
from network.portal.forms import (
    ChangePasswordForm,
    ResetRequestForm,
    SetPasswordForm,
    SignInForm,
    SignOutForm,
    SignUpForm,
)

blp = Blueprint("account", __name__, url_prefix="/account")

WRONG_CREDENTIALS = "Wrong e-mail or password."
TOO_MANY = "Too many attempts: wait a few minutes, then try again."
RESET_SENT = "If this address has an account, a link to choose a new password is on its way. It works once, for {minutes} minutes."
APPLIED = "Thank you: your application is in. We have sent you an e-mail; you can sign in now and follow its review."


#: The page (and its form) each limited view answers with when its limits are reached.
_LIMITED_PAGES = {
    "portal.account.sign_in": ("account/sign_in.html", SignInForm),
    "portal.account.sign_up": ("account/sign_up.html", SignUpForm),
    "portal.account.reset_request": ("account/reset_request.html", ResetRequestForm),
}


@blp.errorhandler(RateLimitExceeded)
def _too_many(exc: RateLimitExceeded) -> Any:
    """The form again, as typed, with the same "too many" answer for every e-mail, known or not."""
    template, form_class = _LIMITED_PAGES[request.endpoint or ""]
    return render_template(template, form=form_class(), error=TOO_MANY), 429


def _safe_next(target: str | None) -> str:
    """Return a local path to go to after sign-in (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("portal.home.index")


@blp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    """Sign in with e-mail and password; the same answer for an unknown e-mail and a wrong password."""
    form = SignInForm()
    if request.args.get("expired"):
        flash("Your session has ended: sign in again.")
    if not form.validate_on_submit():
        return render_template("account/sign_in.html", form=form), 400 if form.errors else 200
    email, password = form.email.data or "", form.password.data or ""
    try:
        user = users.sign_in(web.session(), email=email, password=password)
    except Unauthorized as exc:  # the right password, for an account that may not sign in
        return render_template("account/sign_in.html", form=form, error=exc.message), 401
    if user is None:
        return render_template("account/sign_in.html", form=form, error=WRONG_CREDENTIALS), 401
    start_session(user)
    if user.partner_id is not None:
        web.partner_seen(user.partner_id)
    return redirect(_safe_next(request.args.get("next")))


@blp.route("/sign-out", methods=["GET", "POST"])
def sign_out() -> Any:
    """Sign out (POST); every session of this user ends, on every device."""
    form = SignOutForm()
    if request.method == "GET" or not current_user.is_authenticated:
        if not current_user.is_authenticated:
            return redirect(url_for("portal.account.sign_in"))
        return render_template("account/sign_out.html", form=form)
    users.end_sessions(web.session(), current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("portal.account.sign_in"))


@blp.route("/sign-up", methods=["GET", "POST"])
def sign_up() -> Any:
    """A public page where an affiliate applies; the partner starts pending until an admin decides."""
    form = SignUpForm()
    if not form.validate_on_submit():
        return render_template("account/sign_up.html", form=form), 400 if form.errors else 200
    email = form.email.data or ""
    try:
        user = users.sign_up_partner(
            web.session(),
            name=form.name.data or "",
            email=email,
            website=form.website.data or "",
            traffic_sources=form.traffic_sources.data or "",
            password=form.password.data or "",
        )
    except ValidationError as exc:
        return render_template("account/sign_up.html", form=form, error=exc.message), 400
    if user is None:
        # The address has an account: tell its owner, and answer this page as for a new one.
        body = (
            "Someone (perhaps you) tried to sign up with this address, which already has an account.\n"
            f"Sign in: {link(url_for('portal.account.sign_in'))}\n"
            f"Forgot the password? {link(url_for('portal.account.reset_request'))}\n"
        )
        send_after_commit(to=email, subject="You already have an account", body=body)
    else:
        body = (
            "Thank you for applying. An admin reviews new partners; we will e-mail you the decision.\n"
            f"You can sign in meanwhile: {link(url_for('portal.account.sign_in'))}\n"
        )
        send_after_commit(to=user.email, subject="Your application is in", body=body)
    return render_template("account/message.html", title="Application received", message=APPLIED)


@blp.route("/reset", methods=["GET", "POST"])
def reset_request() -> Any:
    """Ask for a password-reset link; the answer is the same whether or not the address has an account."""
    form = ResetRequestForm()
    if not form.validate_on_submit():
        return render_template("account/reset_request.html", form=form), 400 if form.errors else 200
    email = form.email.data or ""
    found = users.request_reset(web.session(), email=email, secret=settings().secret_key)
    minutes = settings().reset_link_minutes
    if found is not None:
        user, token = found
        body = (
            "To choose a new password, open this link (it works once, for "
            f"{minutes} minutes):\n{link(url_for('portal.account.reset', token=token))}\n\n"
            "If you did not ask for it, ignore this mail: your password stays as it is.\n"
        )
        send_after_commit(to=user.email, subject="Choose a new password", body=body)
    return render_template(
        "account/message.html", title="Check your e-mail", message=RESET_SENT.format(minutes=minutes)
    )


#: The links that set a password, by route name (and path): what the token was signed for, the page's title.
PASSWORD_LINKS = {
    "reset": (users.RESET, "Choose a new password"),
    "invitation": (users.INVITE, "Welcome: choose a password"),
}


def _link_max_age(purpose: str) -> int:
    """How long a link of this purpose works, in seconds."""
    if purpose == users.RESET:
        return settings().reset_link_minutes * 60
    return settings().invite_link_hours * 3600


def password_from_link(token: str, kind: str) -> Any:
    """Choose a password from a reset link or an invitation (once, while the link is fresh)."""
    purpose, title = PASSWORD_LINKS[kind]
    secret, max_age = settings().secret_key, _link_max_age(purpose)
    try:
        users.check_link(web.session(), token, secret=secret, purpose=purpose, max_age=max_age)
    except ValidationError as exc:
        return render_template("layout/error.html", title="Link not valid", message=exc.message), 400
    form = SetPasswordForm()
    if not form.validate_on_submit():
        return render_template("account/set_password.html", form=form, title=title), 400 if form.errors else 200
    try:
        users.use_link(web.session(), token, form.password.data or "", secret=secret, purpose=purpose, max_age=max_age)
    except ValidationError as exc:
        return render_template("account/set_password.html", form=form, title=title, error=exc.message), 400
    if current_user.is_authenticated:
        logout_user()
    session.clear()
    flash("Your password is set: sign in with it.")
    return redirect(url_for("portal.account.sign_in"))


for _kind in PASSWORD_LINKS:
    blp.add_url_rule(f"/{_kind}/<token>", _kind, password_from_link, methods=["GET", "POST"], defaults={"kind": _kind})


@blp.route("/profile", methods=["GET", "POST"])
@role_required(*Role)
def profile() -> Any:
    """The signed-in user's account, and a password change (which ends every other session)."""
    form = ChangePasswordForm()
    error = None
    if form.validate_on_submit():
        try:
            user = users.change_password(
                web.session(),
                current_user.id,
                current=form.current_password.data or "",
                new=form.new_password.data or "",
            )
        except (ValidationError, Conflict) as exc:
            error = exc.message
        else:
            start_session(user)  # this browser stays signed in, on a new session; the others end
            flash("Your password is changed; you are signed out everywhere else.")
            return redirect(url_for("portal.account.profile"))
    status = 400 if form.errors or error else 200
    return render_template("account/profile.html", form=form, error=error), status
