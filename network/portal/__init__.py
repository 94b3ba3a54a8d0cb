"""The web app people use: sign-in, partner sign-up, invitations, password resets, and each role's pages.

`register(app)` wires it: cookie sessions on its paths only, Flask-Login, CSRF on every state-changing
request, security headers, HTML error pages, the sign-in limiter and the mailer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Flask, Response, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError as WTFormsError

from network import mail
from network.clock import now_utc
from network.errors import DomainError
from network.portal import account, admin, brand, finance, home, partner, partner_offers, throttle
from network.portal.common import CONTENT_SECURITY_POLICY, blp, load_user
from network.portal.common import settings as common_settings
from network.portal.forms import SignOutForm
from network.portal.sessions import WebSessions

__all__ = ["register"]

# Once, at import: a blueprint's children cannot change after its first registration on an app.
for _area in (account, admin, brand, finance, home, partner, partner_offers):
    blp.register_blueprint(_area.blp)


def register(app: Flask) -> None:
    """Serve the web app on `app`; the API and tracking paths keep running without a cookie session."""
    settings = app.extensions["network.settings"]
    app.session_interface = WebSessions()
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_base_url.startswith("https://"),
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.session_absolute_hours),
        # Refreshed by the idle check below, not by every request.
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    manager = LoginManager()
    manager.user_loader(load_user)
    manager.login_view = "portal.account.sign_in"
    manager.login_message = "Sign in to see this page."
    manager.session_protection = "basic"
    # Not init_app(): that adds an after_request (the remember cookie, unused) to every request,
    # clicks included. current_user only needs the manager on the app.
    app.login_manager = manager  # type: ignore[attr-defined]
    app.extensions["network.mailer"] = mail.from_settings(settings.mail_url, settings.mail_outbox)
    app.register_blueprint(blp)
    app.extensions["network.signin_limiter"] = throttle.install(
        app,
        storage_uri=settings.ratelimit_storage_uri,
        per_account=settings.signin_limit_account,
        per_address=settings.signin_limit_address,
        blueprint=blp.name,
    )


@blp.before_request
def _check_csrf() -> Any:
    """Refuse any state-changing request without this session's CSRF token (form field or X-CSRFToken)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    token = request.form.get("csrf_token") or request.headers.get("X-CSRFToken")
    try:
        validate_csrf(token)
    except WTFormsError as exc:
        raise CSRFError("The form has expired or did not come from this site: reload the page and try again.") from exc
    return None


@blp.before_request
def _check_lifetimes() -> Any:
    """End a signed-in session past its idle or absolute lifetime; note activity otherwise."""
    if not current_user.is_authenticated:
        return None
    settings = common_settings()
    now = now_utc().timestamp()
    signed_in_at = float(session.get("signed_in_at", 0))
    seen_at = float(session.get("seen_at", 0))
    if (
        now - signed_in_at > settings.session_absolute_hours * 3600
        or now - seen_at > settings.session_idle_minutes * 60
    ):
        logout_user()
        session.clear()
        return redirect(url_for("portal.account.sign_in", expired=1))
    if now - seen_at > 60:
        session["seen_at"] = now
    return None


@blp.after_request
def _security_headers(response: Response) -> Response:
    """Every page: no inline script or style, no framing, no sniffing, no referrer (links carry tokens)."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "portal.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@blp.context_processor
def _context() -> dict[str, Any]:
    return {"current_user": current_user, "sign_out_form": SignOutForm(formdata=None)}


@blp.errorhandler(CSRFError)
def _csrf_error(exc: CSRFError) -> Any:
    return render_template("layout/error.html", title="Form expired", message=exc.description), 400


@blp.errorhandler(DomainError)
def _domain_error(exc: DomainError) -> Any:
    return render_template("layout/error.html", title="Not possible", message=exc.message), exc.status


@blp.errorhandler(403)
@blp.errorhandler(404)
def _http_error(exc: Any) -> Any:
    return render_template("layout/error.html", title=exc.name, message=exc.description), exc.code
