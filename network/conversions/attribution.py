"""Attribution: the click a postback names, its link's context, and the plan that records it.

A click id carries its link and time under an HMAC (network/tracking/clickid.py): a forged or
foreign id leads nowhere. The link's context (offer, brand, partner, event, caps) comes from the
per-process cache (context.py). The click's own row gives its country and fraud flags (and, in the
same query, whether its address is one of its partner's own: self-referral); a click this
process has not written yet is still in the tracking writer's buffer, and is read there. A click
whose row is gone (dropped with its month's partition, past CLICK_RETENTION_MONTHS) still
attributes from its id: its link's context, without the row's country, flags and sub ids.

API: `Attribution` and `attribute` (what a click id leads to), `Plan` and `plan` (an attributed,
well-formed postback ready to be recorded), `ClickRow`, `click_rows` and `clicks` (the plans'
clicks, written or buffered).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Session

from network.config import Settings
from network.conversions import rules
from network.conversions.context import ContextCache, LinkContext, read_context
from network.conversions.intake import Params, Trace, parse_amount
from network.db import ByCount, UTCDateTime
from network.errors import ValidationError
from network.offers.rules import needs_amount
from network.partners.models import PartnerAddress
from network.tracking.clickid import ClickIdCodec, ClickRef
from network.tracking.models import Click
from network.tracking.partitions import around
from network.tracking.service import buffered_click


@functools.lru_cache(maxsize=8)
def _codec(secret: str) -> ClickIdCodec:
    return ClickIdCodec(secret)


@dataclass(frozen=True, slots=True)
class Attribution:
    """What a verified click id leads to: when the click was, and its link's context."""

    #: None for a customer's or a coupon's conversion without a click (beyond.py).
    ref: ClickRef | None
    link: LinkContext


def attribute(
    session: Session, settings: Settings, contexts: ContextCache | None, click_id: str | None, event: str | None
) -> Attribution | None:
    """Return what a click id leads to when its HMAC holds and its link exists, else None."""
    ref = _codec(settings.secret_key).verify(click_id)
    if ref is None:
        return None
    if contexts is None:
        link = read_context(session, ref.link_id, event)
    else:
        link = contexts.get(session, ref.link_id, event)
    return Attribution(ref, link) if link is not None else None


@dataclass(slots=True)
class Plan:
    """An authenticated, attributed, well-formed postback, ready to be judged and recorded."""

    #: The click the postback named (None without one: a customer's or a coupon's conversion).
    ref: ClickRef | None
    link: LinkContext
    data: Params
    trace: Trace
    now: dt.datetime
    pixel: bool
    currency: str
    amount_minor: int | None
    #: The plan judged on its click's row, both read before its batch waited in the writers' line
    #: (network/conversions/groupcommit.py read_ahead); None: read and judged when recorded.
    judged: tuple[rules.Facts, dict[str, Any]] | None = None
    #: How it is attributed (customers.rules.ATTRIBUTED_BY), the coupon it names when that is one
    #: of the brand's for this offer, and when a customer attributed by its binding was bound.
    attributed_by: str = "click"
    coupon: str | None = None
    bound_at: dt.datetime | None = None

    @property
    def click_id(self) -> str:
        """Return the click id the conversion is attributed to."""
        assert self.data.click_id is not None
        return self.data.click_id


def plan(found: Attribution, *, data: Params, trace: Trace, now: dt.datetime, pixel: bool) -> Plan:
    """Return the plan of a postback; raise ValidationError for an unknown event or a missing amount."""
    link = found.link
    trace.offer_id = link.offer_id
    if link.event_id is None or link.model is None:
        raise ValidationError(f"unknown event {data.event!r} for this offer", field="event")
    currency = data.currency or link.currency
    amount_minor = parse_amount(data.amount, currency) if data.amount is not None else None
    if needs_amount(link.model):
        if amount_minor is None:
            raise ValidationError(f"amount is required for a {link.model} event", field="amount")
        if amount_minor == 0:
            raise ValidationError(f"amount must be greater than 0 for a {link.model} event", field="amount")
    return Plan(found.ref, link, data, trace, now, pixel, currency, amount_minor)


# ---- the clicks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClickRow:
    """What judging reads of a click: its country and fraud flags."""

    country: str | None
    is_bot: bool | None
    is_unique: bool | None
    #: The click came from its partner's own address: the evidence (rules.self_referral_evidence).
    self_referral: dict[str, Any] | None = None


_CLICK_COLUMNS = (
    Click.id,
    Click.country,
    Click.is_bot,
    Click.is_unique,
    PartnerAddress.address,
    PartnerAddress.last_seen,
)
#: Self-referral rides the same query: the click's address among its partner's (a key lookup; none
#: matches for nearly every click).
_OWN_ADDRESS = (PartnerAddress.partner_id == Click.partner_id) & (PartnerAddress.address == Click.ip)
#: The plans' clicks, by how many: `WHERE id IN ($1, ... $n)` (an array parameter costs psycopg more
#: to send, and SQLite would need a statement per click), in the range of times their ids carry, so
#: PostgreSQL reads only the partitions of those months (network/tracking/partitions.py).
_CLICKS = ByCount(
    lambda count, _dialect: (
        select(*_CLICK_COLUMNS)
        .outerjoin(PartnerAddress, _OWN_ADDRESS)
        .where(
            Click.id.in_([bindparam(f"id_{n}", type_=String) for n in range(count)]),
            Click.created_at >= bindparam("low", type_=UTCDateTime()),
            Click.created_at < bindparam("high", type_=UTCDateTime()),
        )
    )
)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def click_rows(session: Session, plans: Sequence[Plan]) -> dict[str, ClickRow]:
    """Return the rows of the plans' clicks that are written, by click id.

    A click whose row is gone (its month dropped past the retention) or not written yet is absent:
    the plan is judged on its id alone (its link and time), as `rules.judge` does without a row.
    """
    times = {plan.click_id: plan.ref.clicked_at for plan in plans if plan.ref is not None}
    if not times:
        return {}
    ids = sorted(times)
    low, high = around(times.values())
    params: dict[str, Any] = {f"id_{n}": click_id for n, click_id in enumerate(ids)}
    found = _CLICKS(len(ids)).all(session, {**params, "low": low, "high": high})
    # Driver values: SQLite's booleans are 0 and 1.
    return {
        row[0]: ClickRow(row[1], _bool(row[2]), _bool(row[3]), rules.self_referral_evidence(row[4], _time(row[5])))
        for row in found
    }


def _time(value: Any) -> dt.datetime | None:
    """Return a driver's time value (SQLite's is text) as an aware UTC datetime."""
    if value is None or isinstance(value, dt.datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def own_address(session: Session, partner_id: int, ip: str | None) -> dict[str, Any] | None:
    """Return the self-referral evidence of a buffered click's address, if it is one of its partner's."""
    if ip is None:
        return None
    row = session.get(PartnerAddress, (partner_id, ip))
    return rules.self_referral_evidence(row.address, row.last_seen) if row is not None else None


def clicks(session: Session, plans: Sequence[Plan]) -> dict[str, Any]:
    """Return the clicks of the plans not judged yet: their rows, or their records still in this process's buffer."""
    todo = [p for p in plans if p.judged is None and p.ref is not None]
    if not todo:
        return {}
    ids = sorted({p.click_id for p in todo})
    found: dict[str, Any] = dict(click_rows(session, todo))
    for click_id in ids:
        if click_id in found:
            continue
        # As tracking.service.get_click: a click this process has not written yet is in its buffer.
        pending = buffered_click(session, click_id)
        if pending is not None:
            own = own_address(session, pending.partner_id, pending.ip)
            found[click_id] = ClickRow(pending.country, pending.is_bot, pending.is_unique, own)
    return found
