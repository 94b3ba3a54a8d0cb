"""People: passwords, sign-in, sessions' nonces, invitations, password resets and partner sign-up."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from network import green
from network.accounts.models import Brand, PartnerApplication, User
from network.auth import SYSTEM, Principal, Role, require
from network.clock import now_utc
from network.errors import Conflict, NotFound, Unauthorized, ValidationError
from network.partners import service as partners
from network.partners.models import Partner, PartnerStatus

#: argon2id with the library's current defaults; a stored hash made with older parameters is
#: replaced at the next sign-in.
HASHER = PasswordHasher()
MIN_PASSWORD = 10
MAX_PASSWORD = 256
#: What a link is for; each purpose signs with its own salt, so one kind cannot stand for another.
RESET = "reset"
INVITE = "invite"
INVALID_LINK = "this link is invalid, already used or expired: ask for a new one"
#: Said only to whoever typed the right password, so it tells no one else that the e-mail has an account.
NOT_ACTIVE = "Your account is not active: a pending, rejected or suspended account cannot sign in."
#: A partner in these statuses may not sign in (a pending one may: it follows its review).
SHUT_OUT = frozenset({PartnerStatus.SUSPENDED.value, PartnerStatus.REJECTED.value})


@functools.cache
def _dummy_hash() -> str:
    return _hash(secrets.token_urlsafe(16))


def normalize_email(email: str) -> str:
    """Return the address as stored and compared: stripped and lower-cased."""
    return email.strip().lower()


def check_password(password: str, field: str = "password") -> str:
    """Return the password if it is long enough and not absurdly long, else raise naming `field`."""
    if len(password) < MIN_PASSWORD:
        raise ValidationError(f"the password needs at least {MIN_PASSWORD} characters", field=field)
    if len(password) > MAX_PASSWORD:
        raise ValidationError(f"the password may have at most {MAX_PASSWORD} characters", field=field)
    return password


def _new_nonce() -> str:
    return secrets.token_urlsafe(24)


def _argon2(call: Callable[[], Any]) -> Any:
    """Run an argon2 call (tens of milliseconds of CPU, without the GIL) off gevent's hub in a gevent
    worker, so that a sign-in does not hold up the clicks its worker serves meanwhile."""
    return green.blocking(call)


def _hash(password: str) -> str:
    return _argon2(functools.partial(HASHER.hash, password))


def _set_password(user: User, password: str) -> None:
    user.password_hash = _hash(password)
    user.session_nonce = _new_nonce()  # every session made with the old password ends


def _verify(stored: str | None, password: str) -> bool:
    """Verify `password` against `stored` (a dummy hash when None, so every path takes as long)."""
    try:
        return _argon2(functools.partial(HASHER.verify, stored or _dummy_hash(), password)) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def principal_for(user: User) -> Principal:
    """Return what a signed-in user acts as (the same principal an API key of the role gets)."""
    return Principal(Role(user.role), brand_id=user.brand_id, partner_id=user.partner_id, user_id=user.id)


def _by_email(session: Session, email: str) -> User | None:
    return session.scalars(select(User).where(User.email == normalize_email(email))).one_or_none()


def create_user(
    session: Session,
    principal: Principal,
    *,
    email: str,
    role: Role | str,
    brand_id: int | None = None,
    partner_id: int | None = None,
    password: str | None = None,
) -> User:
    """Create a user (admin); without a password it is `invited` until it sets one from its link."""
    require(principal, Role.ADMIN)
    role = Role(role)
    email = normalize_email(email)
    if "@" not in email or len(email) > 320:
        raise ValidationError("enter an e-mail address", field="email")
    if (role is Role.BRAND) != (brand_id is not None) or (role is Role.PARTNER) != (partner_id is not None):
        raise ValidationError("a brand user needs a brand, a partner user a partner, others neither", field="role")
    if brand_id is not None and session.get(Brand, brand_id) is None:
        raise ValidationError("unknown brand", field="brand_id")
    if partner_id is not None and session.get(Partner, partner_id) is None:
        raise ValidationError("unknown partner", field="partner_id")
    if _by_email(session, email) is not None:
        raise Conflict("this e-mail already has an account", fields={"email": ["already has an account"]})
    user = User(
        email=email,
        role=role.value,
        brand_id=brand_id,
        partner_id=partner_id,
        status="invited",
        session_nonce=_new_nonce(),
    )
    if password is not None:
        _set_password(user, check_password(password))
        user.status = "active"
    session.add(user)
    session.flush()
    return user


# ---- sign-in and sessions ------------------------------------------------------------------------


def may_sign_in(session: Session, user: User) -> bool:
    """Whether the user, and the partner it acts for, are allowed in."""
    if user.status != "active":
        return False
    partner = session.get(Partner, user.partner_id) if user.partner_id is not None else None
    return partner is None or partner.status not in SHUT_OUT


def sign_in(session: Session, *, email: str, password: str) -> User | None:
    """Return the user with this e-mail and password, or None; as slow for an unknown e-mail.

    Raise Unauthorized(NOT_ACTIVE) when the password is right but the user may not sign in: only the
    password's owner learns that the account exists.
    """
    user = _by_email(session, email)
    # An unknown e-mail is verified against a dummy hash: every answer takes as long.
    if not _verify(user.password_hash if user is not None else None, password) or user is None:
        return None
    if not may_sign_in(session, user):
        raise Unauthorized(NOT_ACTIVE)
    if HASHER.check_needs_rehash(user.password_hash or ""):
        user.password_hash = _hash(password)  # the nonce stays: same password, same sessions
    return user


def session_user(session: Session, user_id: int, nonce: str) -> User | None:
    """Return the user a session names if that session is still valid (same nonce, still active)."""
    user = session.get(User, user_id)
    if user is None or not secrets.compare_digest(user.session_nonce, nonce) or not may_sign_in(session, user):
        return None
    return user


def end_sessions(session: Session, user_id: int) -> None:
    """Void every session of the user (sign-out)."""
    user = session.get(User, user_id)
    if user is not None:
        user.session_nonce = _new_nonce()


def change_password(session: Session, user_id: int, *, current: str, new: str) -> User:
    """Replace the user's password after checking the current one; every other session ends."""
    user = session.get(User, user_id)
    if user is None or not _verify(user.password_hash, current):
        raise ValidationError("the current password is not right", field="current_password")
    _set_password(user, check_password(new, "new_password"))
    return user


# ---- links: password reset and invitation --------------------------------------------------------


class _ClockSigner(TimestampSigner):
    """Dates links with clock.now_utc(), the one source of "now" (so tests can move it)."""

    def get_timestamp(self) -> int:
        return int(now_utc().timestamp())


def _serializer(secret: str, purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=f"network.users.{purpose}", signer=_ClockSigner)


def _fingerprint(user: User) -> str:
    # Changes when the password is set (and at sign-out everywhere): a link works once, and a newer
    # password voids older links.
    return hashlib.sha256(f"{user.password_hash or ''}|{user.session_nonce}".encode()).hexdigest()[:32]


def make_link_token(user: User, *, secret: str, purpose: str) -> str:
    """Return a signed, timestamped token naming the user in its current state."""
    return _serializer(secret, purpose).dumps([user.id, _fingerprint(user)])


def _user_from_token(session: Session, token: str, *, secret: str, purpose: str, max_age: int) -> User:
    try:
        user_id, fingerprint = _serializer(secret, purpose).loads(token, max_age=max_age)
    except (SignatureExpired, BadSignature, ValueError, TypeError) as exc:
        raise ValidationError(INVALID_LINK, field="token") from exc
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    wanted = "invited" if purpose == INVITE else "active"
    if user is None or user.status != wanted or not secrets.compare_digest(_fingerprint(user), str(fingerprint)):
        raise ValidationError(INVALID_LINK, field="token")
    return user


def check_link(session: Session, token: str, *, secret: str, purpose: str, max_age: int) -> User:
    """Return the user a reset or invitation link is for, or raise ValidationError(field="token")."""
    return _user_from_token(session, token, secret=secret, purpose=purpose, max_age=max_age)


def request_reset(session: Session, *, email: str, secret: str) -> tuple[User, str] | None:
    """Return the user and a reset token when the e-mail has an account that may sign in, else None."""
    user = _by_email(session, email)
    if user is None or not may_sign_in(session, user):
        return None
    return user, make_link_token(user, secret=secret, purpose=RESET)


def use_link(session: Session, token: str, password: str, *, secret: str, purpose: str, max_age: int) -> User:
    """Set the password from a reset or invitation link (once: the link dies with the old password)."""
    user = _user_from_token(session, token, secret=secret, purpose=purpose, max_age=max_age)
    _set_password(user, check_password(password))
    user.status = "active"
    return user


def invite(
    session: Session, principal: Principal, *, email: str, role: str, brand_id: int | None, secret: str
) -> tuple[User, str]:
    """Create an invited brand, finance or admin user (admin); return it with its invitation token."""
    require(principal, Role.ADMIN)
    if role == Role.PARTNER.value:
        raise ValidationError("partners sign up themselves", field="role")
    user = create_user(session, principal, email=email, role=role, brand_id=brand_id)
    return user, make_link_token(user, secret=secret, purpose=INVITE)


# ---- partner sign-up -----------------------------------------------------------------------------


def sign_up_partner(
    session: Session, *, name: str, email: str, website: str, traffic_sources: str, password: str
) -> User | None:
    """Create a pending partner, its application and its user; None when the e-mail has an account.

    The caller answers the same either way (no enumeration) and tells the address's owner instead.
    """
    check_password(password)
    if _by_email(session, email) is not None:
        return None
    partner = partners.create_partner(
        session, SYSTEM, name=name.strip(), email=normalize_email(email), status=PartnerStatus.PENDING.value
    )
    session.add(PartnerApplication(partner_id=partner.id, website=website.strip(), traffic_sources=traffic_sources))
    return create_user(session, SYSTEM, email=email, role=Role.PARTNER, partner_id=partner.id, password=password)


@dataclass(frozen=True)
class Application:
    """An application with its partner, for the admin's list."""

    id: int
    status: str
    partner_id: int
    name: str
    email: str | None
    website: str
    traffic_sources: str
    created_at: object


def list_applications(session: Session, principal: Principal, *, status: str = "pending") -> list[Application]:
    """Return partner applications with this status, oldest first (admin)."""
    require(principal, Role.ADMIN)
    rows = session.execute(
        select(PartnerApplication, Partner)
        .join(Partner, Partner.id == PartnerApplication.partner_id)
        .where(PartnerApplication.status == status)
        .order_by(PartnerApplication.id)
    )
    return [
        Application(a.id, a.status, p.id, p.name, p.email, a.website, a.traffic_sources, a.created_at) for a, p in rows
    ]


def decide_application(session: Session, principal: Principal, application_id: int, *, approve: bool) -> Partner:
    """Approve (partner active) or reject (partner rejected, its users' sessions ended) a pending application."""
    require(principal, Role.ADMIN)
    application = session.get(PartnerApplication, application_id)
    if application is None:
        raise NotFound("application not found")
    if application.status != "pending":
        raise Conflict(f"this application is already {application.status}")
    application.status = "approved" if approve else "rejected"
    application.decided_at = now_utc()
    application.decided_by = principal.label
    status = PartnerStatus.ACTIVE if approve else PartnerStatus.REJECTED
    partner = partners.set_status(session, principal, application.partner_id, status.value)
    if not approve:
        for user in session.scalars(select(User).where(User.partner_id == partner.id)):
            user.session_nonce = _new_nonce()
    return partner


def get_user(session: Session, user_id: int) -> User:
    """Return a user by id, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user not found")
    return user
