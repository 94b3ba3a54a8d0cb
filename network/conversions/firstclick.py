"""First-click attribution: a conversion on a first_click offer goes to the visitor's earliest click.

The postback's click id names one of the visitor's clicks; its row's visitor key (the keyed hash of
address and user agent, Click.visitor) links that visitor's clicks. Of the visitor's clicks on the
same offer inside the offer's window before the named one, the earliest that went to the offer (not
a bot's, not sent to the fallback) takes the conversion, whichever partner's link it was on. One
query: the named click by its key (its id, in the range of times its id carries: one partition),
joined to the visitor's clicks through `ix_clicks_visitor` (a hash of the visitor key on PostgreSQL,
only the clicks that may be attributed), in the partitions of the window's months; a visitor has few
clicks, so those of other offers are read and left.

Best effort where the rows are not there: a named click still in this process's buffer is looked up
by its buffered visitor key; one not yet written by another process, or whose row is gone (past the
retention), keeps the conversion (last click). Last-click offers never come here (no query).

API: `earliest`.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from sqlalchemy import Integer, String, Table, bindparam, select, text
from sqlalchemy.orm import Session

from network.conversions.attribution import Attribution
from network.conversions.context import ContextCache, LinkContext, read_context
from network.db import UTCDateTime
from network.tracking.clickid import ClickRef
from network.tracking.models import Click
from network.tracking.partitions import around
from network.tracking.service import buffered_click

_CLICKS = cast(Table, Click.__table__)
_NAMED = _CLICKS.alias("named")
_FIRST = _CLICKS.alias("f")
#: The partial index's own predicate, word for word, so both databases see the index serves the query.
_ATTRIBUTABLE = text("f.fallback_reason IS NULL AND NOT f.is_bot")
_WINDOW = (
    _FIRST.c.created_at >= bindparam("since", type_=UTCDateTime()),
    _ATTRIBUTABLE,
)
_ORDER = (_FIRST.c.created_at, _FIRST.c.id)
#: The offer, as an expression no index serves: SQLite, without statistics, would rather read all the
#: offer's clicks of the window (two constraints on ix_clicks_offer_created) than the visitor's few.
_OFFER = _FIRST.c.offer_id + 0

#: The visitor's earliest attributable click on the offer in the window, before the named click.
_BY_NAMED = (
    select(_FIRST.c.id, _FIRST.c.link_id, _FIRST.c.created_at)
    .join(_NAMED, (_NAMED.c.offer_id == _OFFER) & (_FIRST.c.visitor == _NAMED.c.visitor))
    .where(
        _NAMED.c.id == bindparam("click_id", type_=String),
        _NAMED.c.created_at >= bindparam("low", type_=UTCDateTime()),
        _NAMED.c.created_at < bindparam("high", type_=UTCDateTime()),
        _FIRST.c.created_at < _NAMED.c.created_at,
        *_WINDOW,
    )
    .order_by(*_ORDER)
    .limit(1)
)
#: The same, for a named click still buffered: by its offer and visitor key.
_BY_VISITOR = (
    select(_FIRST.c.id, _FIRST.c.link_id, _FIRST.c.created_at)
    .where(
        bindparam("offer_id", type_=Integer) == _OFFER,
        _FIRST.c.visitor == bindparam("visitor", type_=String),
        _FIRST.c.created_at < bindparam("before", type_=UTCDateTime()),
        *_WINDOW,
    )
    .order_by(*_ORDER)
    .limit(1)
)


def earliest(
    session: Session,
    contexts: ContextCache | None,
    found: Attribution,
    click_id: str,
    event: str | None,
    now: dt.datetime,
) -> tuple[Attribution, str]:
    """Return the attribution and click id of the visitor's earliest click on the offer in its window.

    The named click's own when it is the earliest, or when its visitor's clicks are unknown.
    """
    if found.ref is None:  # only a click's attribution names a click (customers and coupons have none)
        return found, click_id
    clicked_at = found.ref.clicked_at
    since = now - dt.timedelta(days=found.link.conversion_window_days)
    pending = buffered_click(session, click_id)
    if pending is None:
        low, high = around([clicked_at])
        params = {"click_id": click_id, "low": low, "high": high, "since": since}
        row = session.connection().execute(_BY_NAMED, params).first()
    elif pending.visitor is not None:
        params = {"offer_id": found.link.offer_id, "visitor": pending.visitor, "before": clicked_at, "since": since}
        row = session.connection().execute(_BY_VISITOR, params).first()
    else:
        row = None
    if row is None:
        return found, click_id
    first_id, link_id, first_at = row
    link: LinkContext | None = found.link
    if link_id == found.link.link_id:
        pass
    elif contexts is None:
        link = read_context(session, link_id, event)
    else:
        link = contexts.get(session, link_id, event)
    if link is None:  # pragma: no cover - a click's link is never deleted
        return found, click_id
    if first_at.tzinfo is None:
        first_at = first_at.replace(tzinfo=dt.UTC)
    return Attribution(ClickRef(link_id, first_at), link), first_id
