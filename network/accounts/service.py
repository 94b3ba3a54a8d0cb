"""API keys, authentication and brands."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.accounts.models import ApiKey, Brand
from network.auth import Principal, Role, require

__all__ = ["Role", "require"]
from network.clock import now_utc
from network.errors import Forbidden, NotFound, Unauthorized, ValidationError
from network.money import MoneyError, check_currency
from network.partners.models import Partner


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session,
    *,
    role: Role | str,
    brand_id: int | None = None,
    partner_id: int | None = None,
    label: str | None = None,
) -> tuple[ApiKey, str]:
    """Create an API key and return it with its secret, which is never stored or shown again."""
    role = Role(role)
    if role is Role.BRAND:
        if brand_id is None or partner_id is not None:
            raise ValidationError("a brand key needs brand_id and no partner_id", field="brand_id")
        if session.get(Brand, brand_id) is None:
            raise ValidationError("unknown brand", field="brand_id")
    elif role is Role.PARTNER:
        if partner_id is None or brand_id is not None:
            raise ValidationError("a partner key needs partner_id and no brand_id", field="partner_id")
        if session.get(Partner, partner_id) is None:
            raise ValidationError("unknown partner", field="partner_id")
    elif brand_id is not None or partner_id is not None:
        raise ValidationError(f"a {role.value} key is not bound to a brand or partner", field="role")
    # 256 random bits; the readable prefix names the role so a leaked key is easy to triage.
    secret = secrets.token_urlsafe(32)
    key = f"nk_{role.value}_{secret}"
    row = ApiKey(
        prefix=key[: len(role.value) + 8],
        key_hash=_hash(key),
        role=role.value,
        brand_id=brand_id,
        partner_id=partner_id,
        label=label,
    )
    session.add(row)
    session.flush()
    return row, key


def authenticate(session: Session, authorization: str | None) -> Principal:
    """Return the principal of a `Bearer` key, or raise Unauthorized."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    key = authorization.removeprefix("Bearer ").strip()
    digest = _hash(key)
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    # The lookup is by a hash of a 256-bit secret; compare again in constant time regardless.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    return Principal(Role(row.role), key_id=row.id, brand_id=row.brand_id, partner_id=row.partner_id)


def list_keys(session: Session, principal: Principal) -> list[ApiKey]:
    """Return all keys (admin)."""
    require(principal, Role.ADMIN)
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    """Revoke a key; admins may revoke any key, others only their own."""
    row = session.get(ApiKey, key_id)
    if row is None or (principal.role is not Role.ADMIN and row.id != principal.key_id):
        raise NotFound("key not found")
    if row.revoked_at is None:
        row.revoked_at = now_utc()
    return row


def _new_token() -> str:
    return "pbt_" + secrets.token_urlsafe(24)


def create_brand(session: Session, principal: Principal, *, name: str, currency: str, **extra: object) -> Brand:
    """Create a brand with a fresh postback token (admin)."""
    require(principal, Role.ADMIN)
    try:
        check_currency(currency)
    except MoneyError as exc:
        raise ValidationError(str(exc), field="currency") from exc
    brand = Brand(name=name, currency=currency, postback_token=_new_token(), **extra)
    session.add(brand)
    session.flush()
    return brand


def get_brand(session: Session, principal: Principal, brand_id: int) -> Brand:
    """Return a brand visible to the principal, or 404."""
    brand = session.get(Brand, brand_id)
    if brand is None:
        raise NotFound("brand not found")
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return brand
    if principal.role is Role.BRAND and principal.brand_id == brand.id:
        return brand
    raise NotFound("brand not found")


def list_brands(session: Session, principal: Principal) -> list[Brand]:
    """Return the brands the principal may see."""
    query = select(Brand).order_by(Brand.id)
    if principal.role is Role.BRAND:
        query = query.where(Brand.id == principal.brand_id)
    elif principal.role is Role.PARTNER:
        raise Forbidden("partners may not list brands")
    return list(session.scalars(query))


def update_brand(session: Session, principal: Principal, brand_id: int, **changes: object) -> Brand:
    """Change a brand's name or settings (admin, or the brand itself)."""
    brand = get_brand(session, principal, brand_id)
    require(principal, Role.ADMIN, Role.BRAND)
    for name, value in changes.items():
        setattr(brand, name, value)
    return brand


def rotate_postback_token(session: Session, principal: Principal, brand_id: int) -> Brand:
    """Replace the brand's postback token; the old one stops working at once."""
    brand = get_brand(session, principal, brand_id)
    require(principal, Role.ADMIN, Role.BRAND)
    brand.postback_token = _new_token()
    return brand
