"""Tracking links (create, list, read) and clicks as other domains see them."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.db import DEFAULT_PAGE, MAX_PAGE, paged, where_given
from network.errors import Forbidden, NotFound, ValidationError
from network.offers import service as offers
from network.offers.models import Offer
from network.tracking import rules
from network.tracking.clickid import LENGTH as CLICK_ID_LENGTH
from network.tracking.models import Click, Link
from network.tracking.writer import PendingClick, buffered_click, flush_all

#: Re-exported for the pixel: the cookie that carries the click id.
CLICK_COOKIE = rules.CLICK_COOKIE


def _new_code(session: Session) -> str:
    # 72 random bits: short, URL-safe, and not enumerable.
    for _ in range(5):
        code = secrets.token_urlsafe(9)
        if session.scalar(select(Link.id).where(Link.code == code)) is None:
            return code
    raise RuntimeError("could not draw an unused link code")  # pragma: no cover - 2**-72 per draw


def create_link(
    session: Session,
    principal: Principal,
    *,
    offer_id: int,
    sub1: str | None = None,
    sub2: str | None = None,
    sub3: str | None = None,
    sub4: str | None = None,
    sub5: str | None = None,
    deep_link: str | None = None,
) -> Link:
    """Create a tracking link for the partner, on an offer it may run (public, approved or invited)."""
    require(principal, Role.PARTNER)
    assert principal.partner_id is not None
    offer = offers.get_offer(session, principal, offer_id)
    if not offers.partner_may_run(session, offer, principal.partner_id):
        raise Forbidden("you may not run this offer (it is not active, or you are not approved)", code="not_runnable")
    if deep_link is not None:
        problem = rules.deep_link_problem(deep_link, frozenset(offer.allowed_domains or ()))
        if problem:
            raise ValidationError(f"deep_link {problem}", field="deep_link")
        deep_link = rules.clean_deep_link(deep_link, frozenset(offer.allowed_domains or ()))
    link = Link(
        code=_new_code(session),
        offer_id=offer.id,
        partner_id=principal.partner_id,
        sub1=sub1,
        sub2=sub2,
        sub3=sub3,
        sub4=sub4,
        sub5=sub5,
        deep_link=deep_link,
    )
    session.add(link)
    session.flush()
    return link


def _visible(principal: Principal):  # type: ignore[no-untyped-def]
    """Return a filter of the links the principal may see (None: all)."""
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return None
    if principal.role is Role.PARTNER:
        return Link.partner_id == principal.partner_id
    if principal.role is Role.BRAND:
        return Link.offer_id.in_(select(Offer.id).where(Offer.brand_id == principal.brand_id))
    raise Forbidden("not allowed")  # pragma: no cover - every role is handled above


def list_links(
    session: Session,
    principal: Principal,
    *,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
    offer_id: int | None = None,
) -> list[Link]:
    """Return a page of the links the principal may see, by id: a partner's own, a brand's offers'."""
    query = select(Link)
    condition = _visible(principal)
    if condition is not None:
        query = query.where(condition)
    query = where_given(query, (Link.offer_id, offer_id))
    return list(session.scalars(paged(query, Link.id, limit=min(limit, MAX_PAGE), after=after)))


def get_link(session: Session, principal: Principal, link_id: int) -> Link:
    """Return a link the principal may see, or 404."""
    query = select(Link).where(Link.id == link_id)
    condition = _visible(principal)
    if condition is not None:
        query = query.where(condition)
    link = session.scalars(query).one_or_none()
    if link is None:
        raise NotFound("link not found")
    return link


def click_counts(session: Session, principal: Principal, link_ids: list[int]) -> dict[int, int]:
    """Return the written clicks of each of `link_ids` the principal may see (0 for none); one query."""
    query = select(Click.link_id, func.count()).where(Click.link_id.in_(link_ids)).group_by(Click.link_id)
    condition = _visible(principal)
    if condition is not None:
        query = query.where(Click.link_id.in_(select(Link.id).where(condition)))
    counts = {link_id: 0 for link_id in link_ids}
    counts.update({link_id: int(n) for link_id, n in session.execute(query)})
    return counts


def get_click(session: Session, click_id: str) -> Click | PendingClick | None:
    """Return a click by its id: its row, or the buffered click when this process has not written it yet."""
    # A buffered click (PendingClick) has Click's attributes, with is_unique and is_bot as the next
    # flush will most likely set them. A click buffered in another process is None until written
    # (within about 0.1 s); its id still verifies and names the link (ClickIdCodec).
    if not click_id or len(click_id) != CLICK_ID_LENGTH:
        return None
    return buffered_click(session, click_id) or session.get(Click, click_id)


def flush_clicks() -> int:
    """Write this process's buffered clicks and impressions now (tests, shutdown); return the click count."""
    return flush_all()
