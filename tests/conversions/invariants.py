"""The invariants of RELIABILITY.md that conversions must keep, asserted after every scenario."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from network.clock import period_start
from network.conversions import rules
from network.conversions.models import Conversion, ConversionHistory
from network.offers.models import Cap, CapCounter, Offer, OfferEvent, PartnerOverride
from network.offers.rules import Figures
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Link
from tests.rollups.support import check_rollups


def _accepted_at_creation(session: Session) -> dict[int, bool]:
    """Return, per conversion id, whether it was accepted when it was created (its first status)."""
    first: dict[int, str] = {}
    for line in session.scalars(select(ConversionHistory).order_by(ConversionHistory.id)):
        first.setdefault(line.conversion_id, line.new_status)
    return {cid: status != "rejected" for cid, status in first.items()}


def check_invariants(session: Session, secret: str) -> None:
    """Assert: attributable clicks credited once, caps never exceeded, commissions by the rule, history matches
    status, rollups equal the raw rows."""
    session.expire_all()
    codec = ClickIdCodec(secret)
    all_conversions = list(session.scalars(select(Conversion).order_by(Conversion.id)))
    accepted = _accepted_at_creation(session)
    offers = {o.id: o for o in session.scalars(select(Offer))}
    events = {e.id: e for e in session.scalars(select(OfferEvent))}
    links = {link.id: link for link in session.scalars(select(Link))}
    overrides = {(o.event_id, o.partner_id): o for o in session.scalars(select(PartnerOverride))}

    # One conversion per click and event without txn_id, whatever the click id's spelling: the
    # decoded bytes are the click (base64 has several spellings of the same bytes).
    without_txn: set[tuple[bytes | str, int]] = set()
    for c in all_conversions:
        if c.txn_id is None:
            try:
                click_key: bytes | str = base64.urlsafe_b64decode(c.click_id + "=")
            except (binascii.Error, ValueError):
                click_key = c.click_id
            assert (click_key, c.event_id) not in without_txn, f"click of conversion {c.id} credited twice"
            without_txn.add((click_key, c.event_id))

    for c in all_conversions:
        # Every conversion has a history, whose last line is its status.
        last = session.scalars(
            select(ConversionHistory.new_status)
            .where(ConversionHistory.conversion_id == c.id)
            .order_by(ConversionHistory.id.desc())
            .limit(1)
        ).one()
        assert last == c.status, (c.id, last, c.status)
        link = links[c.link_id]
        assert (link.offer_id, link.partner_id) == (c.offer_id, c.partner_id), f"conversion {c.id} not its link's"
        if c.attributed_by != "click":
            # A customer's or coupon's conversion: its link is its binding's or coupon's; no window.
            assert c.txn_id is not None, f"conversion {c.id} without a click has no dedupe key"
            if accepted[c.id]:
                _check_commission(c, events, overrides)
            else:
                assert (c.payout_minor, c.revenue_minor) == (0, 0), f"rejected conversion {c.id} is worth something"
            continue
        assert c.click_id is not None and c.clicked_at is not None
        # No conversion without a click of the same offer and partner (its id's HMAC holds).
        ref = codec.verify(c.click_id)
        assert ref is not None, f"conversion {c.id} has an unverifiable click id"
        link = links[ref.link_id]
        assert (ref.link_id, link.offer_id, link.partner_id) == (c.link_id, c.offer_id, c.partner_id)
        assert ref.clicked_at == c.clicked_at
        if not accepted[c.id]:
            assert (c.payout_minor, c.revenue_minor) == (0, 0), f"rejected conversion {c.id} is worth something"
            continue
        # ... and, when accepted, inside the window.
        offer = offers[c.offer_id]
        assert c.created_at >= c.clicked_at - rules.CLOCK_SKEW
        assert c.created_at - c.clicked_at <= dt.timedelta(days=offer.conversion_window_days)
        assert c.currency == offer.currency
        _check_commission(c, events, overrides)

    # Accepted conversions per cap period never exceed the cap, and the counters agree.
    _check_caps(session, all_conversions, accepted)

    # Rollups equal the raw rows they summarise, for every closed hour.
    check_rollups(session)


def _check_commission(c: Conversion, events: dict[int, OfferEvent], overrides: dict[tuple[int, int], Any]) -> None:
    """Assert: commission = the rule applied to the amount."""
    event = events[c.event_id]
    figures = Figures(event.model, event.payout_minor, event.revenue_minor, event.payout_percent, event.revenue_percent)
    override = overrides.get((c.event_id, c.partner_id))
    expected = rules.compute_commission(
        figures,
        c.amount_minor,
        override_payout_minor=override.payout_minor if override else None,
        override_payout_percent=override.payout_percent if override else None,
    )
    assert (c.payout_minor, c.revenue_minor) == expected, (c.id, (c.payout_minor, c.revenue_minor), expected)


def _check_caps(session: Session, all_conversions: list[Conversion], accepted: dict[int, bool]) -> None:
    """Assert: accepted conversions per cap period never exceed the cap, and the counters agree."""
    for cap in session.scalars(select(Cap).where(Cap.metric.in_(("conversions", "payout")))):
        used: dict[tuple[dt.datetime, int], int] = defaultdict(int)
        for c in all_conversions:
            if c.offer_id != cap.offer_id or not accepted[c.id]:
                continue
            key = (period_start(c.created_at, cap.period), c.partner_id if cap.scope == "partner" else 0)
            used[key] += c.payout_minor if cap.metric == "payout" else 1
        counters = {
            (row.period_start, row.partner_key): row.used
            for row in session.scalars(select(CapCounter).where(CapCounter.cap_id == cap.id))
        }
        for key, value in used.items():
            assert value <= cap.limit, f"cap {cap.id} ({cap.metric}/{cap.period}) exceeded in {key}: {value}"
            assert counters.get(key, 0) == value, f"cap {cap.id} counter {counters.get(key)} != accepted {value}"
        assert {k: v for k, v in counters.items() if v} == {k: v for k, v in used.items() if v}
