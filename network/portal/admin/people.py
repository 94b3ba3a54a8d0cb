"""The users of a brand or partner, for the admin's pages (read only: accounts.users owns their rules)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.accounts.models import User
from network.auth import Principal, Role, require


def users_of(
    session: Session, principal: Principal, *, brand_id: int | None = None, partner_id: int | None = None
) -> list[User]:
    """The users of one brand or one partner, oldest first (admin)."""
    require(principal, Role.ADMIN)
    query = select(User).order_by(User.id)
    if brand_id is not None:
        query = query.where(User.brand_id == brand_id)
    if partner_id is not None:
        query = query.where(User.partner_id == partner_id)
    return list(session.scalars(query))
