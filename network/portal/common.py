"""What the web app's views share: the parent blueprint, the signed-in user, mail after commit, role checks."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, TypeVar

from flask import Blueprint, abort, current_app, session
from flask_login import UserMixin, current_user, login_user

from network import mail, web
from network.accounts import users
from network.accounts.models import User
from network.auth import Principal, Role
from network.clock import now_utc

log = logging.getLogger(__name__)

#: No inline script or style anywhere; Pico's icons are data: SVGs in its stylesheet.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

blp = Blueprint(
    "portal", __name__, static_folder="static", static_url_path="/account/assets", template_folder="templates"
)


@dataclass(frozen=True, eq=False)
class SignedIn(UserMixin):
    """The user of a valid session, as Flask-Login keeps it (not an ORM row: it outlives the DB session)."""

    id: int
    email: str
    role: str
    brand_id: int | None
    partner_id: int | None
    nonce: str

    @classmethod
    def of(cls, user: User) -> SignedIn:
        return cls(user.id, user.email, user.role, user.brand_id, user.partner_id, user.session_nonce)

    def get_id(self) -> str:
        # The nonce rides in the session: a new one (sign-out, password change) voids every old session.
        return f"{self.id}:{self.nonce}"

    @property
    def principal(self) -> Principal:
        return Principal(Role(self.role), brand_id=self.brand_id, partner_id=self.partner_id, user_id=self.id)


def load_user(session_id: str) -> SignedIn | None:
    """Flask-Login's user loader: the session's user if its nonce is still the user's."""
    user_id, _, nonce = session_id.partition(":")
    if not user_id.isdigit() or not nonce:
        return None
    user = users.session_user(web.session(), int(user_id), nonce)
    return SignedIn.of(user) if user is not None else None


def start_session(user: User) -> None:
    """Sign `user` in on a fresh session: whatever the cookie held before (a planted one) is dropped."""
    session.clear()
    login_user(SignedIn.of(user))
    session.permanent = True
    now = now_utc().timestamp()
    session["signed_in_at"] = now
    session["seen_at"] = now


def principal() -> Principal:
    """Return the signed-in user's principal (views behind role_required only)."""
    return current_user.principal  # type: ignore[no-any-return]


F = TypeVar("F", bound=Callable[..., Any])


def role_required(*roles: Role) -> Callable[[F], F]:
    """Let only signed-in users of `roles` in: others are sent to sign in, or get 403."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if Role(current_user.role) not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def settings() -> Any:
    return current_app.extensions["network.settings"]


def link(endpoint_path: str) -> str:
    """Return an absolute link for a path of this app (mails are read outside the browser)."""
    return settings().public_base_url.rstrip("/") + endpoint_path


def send_after_commit(*, to: str, subject: str, body: str) -> None:
    """Commit the request's work, then send: a mail never tells of something that was rolled back.

    A failed send is logged, not shown: the page answers the same whether or not an address has an
    account, so it cannot say that a mail could not be sent.
    """
    web.commit_before_calling_out()
    message: EmailMessage = mail.compose(sender=settings().mail_from, to=to, subject=subject, body=body)
    try:
        current_app.extensions["network.mailer"].send(message)
    except Exception:
        log.exception("could not send the mail %r", subject)
