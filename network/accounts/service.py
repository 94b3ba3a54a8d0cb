"""API keys, authentication and brands."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.accounts.models import ApiKey, Brand
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.db import DEFAULT_PAGE, paged
from network.errors import NotFound, Unauthorized, ValidationError
from network.money import MoneyError, check_currency
from network.partners.models import Partner

__all__ = ["Role", "require"]

#: Brand fields a brand may change itself; anything else is refused by the input schema.
BRAND_FIELDS = frozenset({"name", "share_txn_id"})


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# ---- keys --------------------------------------------------------------------------------------


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


def issue_key(session: Session, principal: Principal, **data: Any) -> tuple[ApiKey, str]:
    """Create an API key on behalf of an admin; return the row and the key (shown once)."""
    require(principal, Role.ADMIN)
    return create_key(session, **data)


def authenticate(session: Session, authorization: str | None) -> Principal:
    """Return the principal of a `Bearer` key, or raise Unauthorized."""
    scheme, _, key = (authorization or "").strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    digest = _hash(key)
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    # The lookup is by a hash of a 256-bit secret; compare again in constant time regardless.
    if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked API key")
    return Principal(Role(row.role), key_id=row.id, brand_id=row.brand_id, partner_id=row.partner_id)


def list_keys(
    session: Session,
    principal: Principal,
    *,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
    role: str | None = None,
    brand_id: int | None = None,
    partner_id: int | None = None,
    revoked: bool | None = None,
) -> list[ApiKey]:
    """Return one page of keys (admin), optionally filtered."""
    require(principal, Role.ADMIN)
    query = select(ApiKey)
    if role is not None:
        query = query.where(ApiKey.role == role)
    if brand_id is not None:
        query = query.where(ApiKey.brand_id == brand_id)
    if partner_id is not None:
        query = query.where(ApiKey.partner_id == partner_id)
    if revoked is not None:
        query = query.where(ApiKey.revoked_at.is_not(None) if revoked else ApiKey.revoked_at.is_(None))
    return list(session.scalars(paged(query, ApiKey.id, limit=limit, after=after)))


def get_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    """Return a key's record (never the key): admins any, others only the key they are using."""
    row = session.get(ApiKey, key_id)
    if row is None or (principal.role is not Role.ADMIN and row.id != principal.key_id):
        raise NotFound("key not found")
    return row


def revoke_key(session: Session, principal: Principal, key_id: int) -> ApiKey:
    """Revoke a key at once; admins may revoke any key, others only their own."""
    row = get_key(session, principal, key_id)
    if row.revoked_at is None:
        row.revoked_at = now_utc()
    return row


# ---- brands ------------------------------------------------------------------------------------


def _new_token() -> str:
    return "pbt_" + secrets.token_urlsafe(24)


def create_brand(
    session: Session, principal: Principal, *, name: str, currency: str, share_txn_id: bool = False
) -> Brand:
    """Create a brand with a fresh postback token (admin)."""
    require(principal, Role.ADMIN)
    try:
        check_currency(currency)
    except MoneyError as exc:
        raise ValidationError(f"currency: {exc}", field="currency") from exc
    brand = Brand(name=name, currency=currency, postback_token=_new_token(), share_txn_id=share_txn_id)
    session.add(brand)
    session.flush()
    return brand


def get_brand(session: Session, principal: Principal, brand_id: int) -> Brand:
    """Return a brand visible to the principal (admin, finance, the brand itself), or 404; partners 403."""
    require(principal, Role.ADMIN, Role.FINANCE, Role.BRAND)
    brand = session.get(Brand, brand_id)
    if brand is None or (principal.role is Role.BRAND and principal.brand_id != brand.id):
        raise NotFound("brand not found")
    return brand


def list_brands(
    session: Session, principal: Principal, *, limit: int = DEFAULT_PAGE, after: int | None = None
) -> list[Brand]:
    """Return one page of the brands the principal may see (a brand sees itself; partners 403)."""
    require(principal, Role.ADMIN, Role.FINANCE, Role.BRAND)
    query = select(Brand)
    if principal.role is Role.BRAND:
        query = query.where(Brand.id == principal.brand_id)
    return list(session.scalars(paged(query, Brand.id, limit=limit, after=after)))


def may_see_token(principal: Principal, brand: Brand) -> bool:
    """Return whether the principal may read the brand's postback token (admin, the brand itself)."""
    return principal.role is Role.ADMIN or (principal.role is Role.BRAND and principal.brand_id == brand.id)


def update_brand(session: Session, principal: Principal, brand_id: int, **changes: Any) -> Brand:
    """Change a brand's name or settings (admin, or the brand itself)."""
    require(principal, Role.ADMIN, Role.BRAND)
    brand = get_brand(session, principal, brand_id)
    unknown = set(changes) - BRAND_FIELDS
    if unknown:
        name = sorted(unknown)[0]
        raise ValidationError(f"{name} cannot be changed", field=name)
    for name, value in changes.items():
        setattr(brand, name, value)
    return brand


def rotate_postback_token(session: Session, principal: Principal, brand_id: int) -> Brand:
    """Replace the brand's postback token; the old one stops working at once."""
    require(principal, Role.ADMIN, Role.BRAND)
    brand = get_brand(session, principal, brand_id)
    brand.postback_token = _new_token()
    return brand
