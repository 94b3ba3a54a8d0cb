"""Tracking links (create, list, read) and clicks as other domains see them."""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import weakref

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
from network.tracking.pending import PendingClick
from network.tracking.writer import ClickWriter

#: Re-exported for the pixel: the cookie that carries the click id.
CLICK_COOKIE = rules.CLICK_COOKIE

log = logging.getLogger(__name__)


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
    # A click buffered in another process is None until written (within about 0.1 s); its id still
    # verifies and names the link (ClickIdCodec).
    if not click_id or len(click_id) != CLICK_ID_LENGTH:
        return None
    return buffered_click(session, click_id) or session.get(Click, click_id)


# ---- clicks answered by this process and not written yet ----------------------------------------
#
# Each app owns its click writer (app.extensions["network.tracking"].writer). A click lives in the
# buffer of the process that answered it until the next flush (about 0.1 s), and a postback that
# follows it at once is received by any app of that process: the lookup below asks the writers of
# every app of the process. They are held weakly, so an app that goes away takes its writer along.

_writers: weakref.WeakSet[ClickWriter] = weakref.WeakSet()
_writers_lock = threading.Lock()


def register_writer(writer: ClickWriter) -> None:
    """Make an app's click writer answer `buffered_click` and `flush_clicks`, and flush at exit."""
    with _writers_lock:
        if not writer.background:
            # Tests build one app per test, each bound to a transaction that is then rolled back:
            # only the newest such writer is asked, so an older test's leftovers are never written.
            for other in [w for w in _writers if not w.background]:
                _writers.discard(other)
        _writers.add(writer)


def _registered() -> list[ClickWriter]:
    with _writers_lock:
        return list(_writers)


def buffered_click(session: Session, click_id: str) -> PendingClick | None:
    """Return a click this process has not written yet, as its next flush will most likely write it."""
    # A buffered click has Click's attributes, with is_unique and is_bot as the flush will set them.
    for writer in _registered():
        pending = writer.find(click_id)
        if pending is not None:
            return writer.preview(session, pending)
    return None


def flush_clicks() -> int:
    """Write this process's buffered clicks and impressions now (tests, shutdown); return the click count."""
    return sum(writer.flush() for writer in _registered())


@atexit.register
def _close_at_exit() -> None:
    # A clean shutdown loses no answered click: gunicorn workers run atexit when they exit.
    for writer in _registered():
        if writer.background:
            try:
                writer.close()
            except Exception:
                log.exception("could not write buffered clicks at exit")


def link_for(session: Session, *, offer_id: int, partner_id: int, new: bool = False) -> Link:
    """Return the partner's oldest link on the offer (a new one when it has none, or when `new`).

    For attribution without a click (a coupon's link, a customer moved to the partner): the
    conversion needs a link of the partner on the offer, as a click's has.
    """
    if not new:
        oldest = session.scalars(
            select(Link).where(Link.offer_id == offer_id, Link.partner_id == partner_id).order_by(Link.id).limit(1)
        ).first()
        if oldest is not None:
            return oldest
    link = Link(code=_new_code(session), offer_id=offer_id, partner_id=partner_id)
    session.add(link)
    session.flush()
    return link
