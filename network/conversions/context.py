"""What a conversion needs to know about its click's link, read once and reused for a moment.

A postback's link, offer, brand (and its token), partner, access, event and partner override come
from one query; its answer is kept per (link, event) for `max_age` seconds (0.5 in servers, 0 in
tests), so a busy offer's postbacks need no query for it. Changes to an offer, its events, a
partner or a token take effect within twice that time (a stale entry is read again by one request
while the others keep it, if it is not older than that), as for clicks (network/tracking/snapshot.py).
The offer's conversion caps are kept too, as rules (which caps, per what); each cap's limit is read
again in the conversion's transaction, where room is taken (network/conversions/recording.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from network.accounts.models import Brand
from network.cache import Cache
from network.conversions import rules as conversion_rules
from network.offers import rules as offer_rules
from network.offers.caps import CONVERSION_CAP
from network.offers.models import AccessStatus, Cap, Offer, OfferAccess, OfferEvent, PartnerOverride
from network.partners.models import Partner, PartnerStatus
from network.tracking.models import Link

#: Entries kept at most; past it the one read longest ago is dropped (network.cache).
MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class LinkContext:
    """A link with its offer, brand, partner, access and one event (None when the offer has no such event)."""

    link_id: int
    offer_id: int
    partner_id: int
    brand_id: int
    brand_token: str
    offer_status: str
    currency: str
    conversion_window_days: int
    hold_days: int
    min_seconds: int
    countries: frozenset[str]
    #: The partner is active and has access to the offer (offers.rules.has_access).
    partner_approved: bool
    event_id: int | None
    model: str | None
    #: The event's figures (0 when there is no such event).
    payout_minor: int
    revenue_minor: int
    payout_percent: int
    revenue_percent: int
    #: The partner's override of the event's payout, if it has one.
    override_payout_minor: int | None
    override_payout_percent: int | None
    #: The offer's conversion caps (conversions and payout metrics), by id.
    caps: tuple[CapRule, ...] = ()
    #: The event's recurring terms for a bound customer (None: forever), and the offer's coupon rule.
    recurring_months: int | None = None
    recurring_conversions: int | None = None
    coupon_rule: str = "click"
    #: last_click or first_click (conversions.rules.ATTRIBUTIONS).
    attribution: str = "last_click"
    #: The fraud flags that hold the offer's conversions for review.
    hold_flags: frozenset[str] = conversion_rules.HOLD_FLAGS
    #: The brand is over its credit limit (billing): new conversions are held pending (flag over_credit).
    brand_held: bool = False


@dataclass(frozen=True, slots=True)
class CapRule:
    """One of an offer's conversion caps: its id, what it counts, per what period and scope, and its limit when read."""

    id: int
    metric: str
    period: str
    limit: int
    scope: str


def _query(*, default_event: bool) -> Select:  # type: ignore[type-arg]
    """Return the one query that reads a link's context (its default event, or the event named)."""
    event_on = OfferEvent.offer_id == Link.offer_id
    # The default event is the first (position 0: positions are kept dense by the offers service).
    event_on &= (OfferEvent.position == 0) if default_event else (OfferEvent.key == bindparam("event_key"))
    return (
        select(
            Link.offer_id, Link.partner_id, Offer.brand_id, Offer.status, Offer.visibility, Offer.currency,
            Offer.conversion_window_days, Offer.hold_days, Offer.min_seconds, Offer.countries,
            Brand.postback_token, Partner.status.label("partner_status"), OfferAccess.status.label("access_status"),
            OfferEvent.id.label("event_id"), OfferEvent.model, OfferEvent.payout_minor, OfferEvent.revenue_minor,
            OfferEvent.payout_percent, OfferEvent.revenue_percent,
            PartnerOverride.payout_minor.label("override_payout_minor"),
            PartnerOverride.payout_percent.label("override_payout_percent"),
            OfferEvent.recurring_months, OfferEvent.recurring_conversions, Offer.coupon_rule,
            Offer.attribution, Offer.hold_flags,
            Brand.credit_hold,
        )
        .join(Offer, Offer.id == Link.offer_id)
        .join(Brand, Brand.id == Offer.brand_id)
        .join(Partner, Partner.id == Link.partner_id)
        .outerjoin(OfferAccess, (OfferAccess.offer_id == Link.offer_id) & (OfferAccess.partner_id == Link.partner_id))
        .outerjoin(OfferEvent, event_on)
        .outerjoin(
            PartnerOverride,
            (PartnerOverride.event_id == OfferEvent.id) & (PartnerOverride.partner_id == Link.partner_id),
        )
        .where(Link.id == bindparam("link_id"))
    )  # fmt: skip


# Built once: executed with parameters only (SQLAlchemy's compiled cache hits).
_DEFAULT_EVENT = _query(default_event=True)
_NAMED_EVENT = _query(default_event=False)


#: Offers' conversion caps (click caps are tracking's), by offer.
_CAPS = (
    select(Cap.offer_id, Cap.id, Cap.metric, Cap.period, Cap.limit, Cap.scope)
    .where(Cap.offer_id.in_(bindparam("offer_ids", expanding=True)), CONVERSION_CAP)
    .order_by(Cap.id)
)


def read_caps(session: Session, offer_ids: Sequence[int]) -> dict[int, tuple[CapRule, ...]]:
    """Return the offers' conversion caps as they are now, by offer (an offer without any is left out)."""
    found: dict[int, list[CapRule]] = {}
    for row in session.connection().execute(_CAPS, {"offer_ids": list(offer_ids)}):
        found.setdefault(row.offer_id, []).append(CapRule(row.id, row.metric, row.period, row.limit, row.scope))
    return {offer_id: tuple(rules) for offer_id, rules in found.items()}


def _context(link_id: int, row: Any, caps: tuple[CapRule, ...]) -> LinkContext:
    # The offer's own status is judged apart (offer_inactive), so only the partner's side of may_run.
    approved = offer_rules.has_access(
        partner_active=row.partner_status == PartnerStatus.ACTIVE.value,
        visibility=row.visibility,
        approved=row.access_status == AccessStatus.APPROVED.value,
    )
    return LinkContext(
        link_id=link_id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        brand_id=row.brand_id,
        brand_token=row.postback_token,
        offer_status=row.status,
        currency=row.currency,
        conversion_window_days=row.conversion_window_days,
        hold_days=row.hold_days,
        min_seconds=row.min_seconds,
        countries=frozenset(row.countries or ()),
        partner_approved=approved,
        event_id=row.event_id,
        model=row.model,
        payout_minor=row.payout_minor or 0,
        revenue_minor=row.revenue_minor or 0,
        payout_percent=row.payout_percent or 0,
        revenue_percent=row.revenue_percent or 0,
        override_payout_minor=row.override_payout_minor,
        override_payout_percent=row.override_payout_percent,
        caps=caps,
        recurring_months=row.recurring_months,
        recurring_conversions=row.recurring_conversions,
        coupon_rule=row.coupon_rule,
        attribution=row.attribution,
        hold_flags=conversion_rules.HOLD_FLAGS if row.hold_flags is None else frozenset(row.hold_flags),
        brand_held=bool(row.credit_hold),
    )


def read_context(session: Session, link_id: int, event: str | None) -> LinkContext | None:
    """Return a link's context for `event` (None: the offer's first) from the database; None for no link."""
    if event is None:
        row = session.connection().execute(_DEFAULT_EVENT, {"link_id": link_id}).first()
    else:
        row = session.connection().execute(_NAMED_EVENT, {"link_id": link_id, "event_key": event}).first()
    if row is None:
        return None
    return _context(link_id, row, read_caps(session, [row.offer_id]).get(row.offer_id, ()))


class ContextCache:
    """Link contexts by (link, event), each reused for `max_age` seconds after it was read.

    Expiry is network.cache's one rule: while one request reads a stale entry again, the others keep
    the one it replaces for at most another `max_age`, so a change takes effect within twice max_age.
    """

    def __init__(self, *, max_age: float = 0.5, monotonic: Callable[[], float] = time.monotonic) -> None:
        #: Seconds an entry is reused; 0 reads every time (tests change offers between requests).
        self.max_age = max_age
        self._cache: Cache[tuple[int, str | None], LinkContext | None] = Cache(
            max_age=max_age, stale_for=max_age, size=MAX_ENTRIES, monotonic=monotonic
        )

    def get(self, session: Session, link_id: int, event: str | None) -> LinkContext | None:
        """Return a link's context for `event`, read again when older than max_age."""
        return self._cache.get((link_id, event), lambda _previous: read_context(session, link_id, event))
