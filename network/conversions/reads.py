"""Reading conversions, their history and the postback log, as each principal may see them.

API: `get_conversion`, `list_conversions`, `history`, `event_keys`, `brands_sharing_txn_id`,
`list_postback_log`, `SUB_IDS`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.clock import as_utc
from network.conversions.models import Conversion, ConversionHistory, PostbackLog
from network.db import paged, where_given
from network.errors import NotFound, ValidationError
from network.offers.models import OfferEvent
from network.tracking.models import Click, Link

#: The sub ids a conversion list may be filtered by.
SUB_IDS = ("sub1", "sub2", "sub3", "sub4", "sub5")


def get_conversion(session: Session, principal: Principal, conversion_id: int) -> Conversion:
    """Return a conversion the principal may see, or 404."""
    conversion = session.get(Conversion, conversion_id)
    if conversion is None or not _visible(principal, conversion):
        raise NotFound("conversion not found")
    return conversion


def _visible(principal: Principal, conversion: Conversion) -> bool:
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return True
    if principal.role is Role.BRAND:
        return conversion.brand_id == principal.brand_id
    if principal.role is Role.PARTNER:
        return conversion.partner_id == principal.partner_id
    return False


def _scoped(query: Select[Any], principal: Principal) -> Select[Any]:
    if principal.role is Role.BRAND:
        return query.where(Conversion.brand_id == principal.brand_id)
    if principal.role is Role.PARTNER:
        return query.where(Conversion.partner_id == principal.partner_id)
    return query


def list_conversions(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    partner_id: int | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    after: int | None = None,
    subs: Mapping[str, str] | None = None,
) -> list[Conversion]:
    """Return the conversions the principal may see, filtered, one page ordered by id.

    `subs` (sub1..sub5 -> value) narrows to conversions whose click carried those sub ids (its own or
    its link's defaults, as reports count them: the link's when the click row is not written yet).
    """
    query = where_given(
        _scoped(select(Conversion), principal),
        (Conversion.offer_id, offer_id),
        (Conversion.partner_id, partner_id),
        (Conversion.status, status),
    )
    if since is not None:
        query = query.where(Conversion.created_at >= as_utc(since))
    if until is not None:
        query = query.where(Conversion.created_at < as_utc(until))
    if subs:
        query = query.join(Link, Link.id == Conversion.link_id).outerjoin(Click, Click.id == Conversion.click_id)
        for name, value in subs.items():
            if name not in SUB_IDS:
                raise ValidationError(f"{name}: not a sub id", field=name)
            query = query.where(func.coalesce(getattr(Click, name), getattr(Link, name)) == value)
    return list(session.scalars(paged(query, Conversion.id, limit=limit, after=after)))


def history(session: Session, principal: Principal, conversion_id: int) -> list[ConversionHistory]:
    """Return a conversion's status history (its brand, admin, finance; a partner its own)."""
    conversion = get_conversion(session, principal, conversion_id)
    return list(
        session.scalars(
            select(ConversionHistory)
            .where(ConversionHistory.conversion_id == conversion.id)
            .order_by(ConversionHistory.id)
        )
    )


def event_keys(session: Session, event_ids: Sequence[int]) -> dict[int, str]:
    """Return the key of each event id."""
    if not event_ids:
        return {}
    rows = session.execute(select(OfferEvent.id, OfferEvent.key).where(OfferEvent.id.in_(set(event_ids))))
    return {row.id: row.key for row in rows}


def brands_sharing_txn_id(session: Session, brand_ids: Sequence[int]) -> set[int]:
    """Return which of the brands let partners see their txn ids."""
    if not brand_ids:
        return set()
    return set(session.scalars(select(Brand.id).where(Brand.id.in_(set(brand_ids)), Brand.share_txn_id.is_(True))))


def sub_ids(session: Session, conversions: Sequence[Conversion]) -> dict[int, list[str]]:
    """Return each conversion's sub1..sub5 as its click carried them (its link's while the click row is unwritten).

    One query for a page of conversions; the caller has already read them through `list_conversions`,
    so the tenant's scope is theirs.
    """
    if not conversions:
        return {}
    written = Click.id.is_not(None)
    subs = [func.coalesce(case((written, getattr(Click, name)), else_=getattr(Link, name)), "") for name in SUB_IDS]
    rows = session.execute(
        select(Conversion.id, *subs)
        .join(Link, Link.id == Conversion.link_id)
        # The partner's own click only (a coupon that won keeps another partner's click).
        .outerjoin(Click, and_(Click.id == Conversion.click_id, Conversion.attributed_by == "click"))
        .where(Conversion.id.in_([c.id for c in conversions]))
    )
    return {row[0]: list(row[1:]) for row in rows}


def list_postback_log(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    click_id: str | None = None,
    txn_id: str | None = None,
    http_status: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[PostbackLog]:
    """Return postback log lines: a brand its own, admin all."""
    require(principal, Role.ADMIN, Role.BRAND)
    query = select(PostbackLog)
    if principal.role is Role.BRAND:
        query = query.where(PostbackLog.brand_id == principal.brand_id)
    query = where_given(
        query,
        (PostbackLog.offer_id, offer_id),
        (PostbackLog.click_id, click_id),
        (PostbackLog.txn_id, txn_id),
        (PostbackLog.http_status, http_status),
    )
    if since is not None:
        query = query.where(PostbackLog.received_at >= as_utc(since))
    if until is not None:
        query = query.where(PostbackLog.received_at < as_utc(until))
    return list(session.scalars(paged(query, PostbackLog.id, limit=limit, after=after)))
