"""Room taken for many conversions at once is decided as if taken one by one (offers/caps.py)."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from network.clock import UTC, period_start
from network.offers import caps
from network.offers.models import Cap, CapCounter
from tests.factories import make_brand, make_offer, make_partner

DAY = dt.datetime(2026, 3, 10, 23, 59, tzinfo=UTC)

asks_strategy = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.integers(0, 400), st.sampled_from([0, 2])),  # partner, payout, minutes
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asked=asks_strategy)
def test_many_at_once_decide_as_one_by_one(session, asked):
    brand = make_brand(session)
    partners = [make_partner(session, name=f"P{n}") for n in range(2)]
    offer = make_offer(
        session,
        brand=brand,
        caps=[
            {"metric": "conversions", "period": "day", "limit": 4},
            {"metric": "payout", "period": "day", "limit": "6.00", "scope": "partner"},
        ],
    )
    rules = session.scalars(select(Cap).where(Cap.offer_id == offer.id)).all()
    asks = [
        caps.Ask(rules, partners[p].id, DAY + dt.timedelta(minutes=minutes), payout) for p, payout, minutes in asked
    ]

    def counters() -> dict[tuple[int, dt.datetime, int], int]:
        session.expire_all()
        return {(c.cap_id, c.period_start, c.partner_key): c.used for c in session.scalars(select(CapCounter))}

    one_by_one = session.begin_nested()
    expected = [
        caps.consume(session, c.caps, partner_id=c.partner_id, at=c.at, payout_minor=c.payout_minor) for c in asks
    ]
    expected_counters = counters()
    one_by_one.rollback()

    at_once = session.begin_nested()
    assert caps.take_room(session, asks) == expected
    assert {k: v for k, v in counters().items() if v} == {k: v for k, v in expected_counters.items() if v}
    at_once.rollback()

    # The counters' rows exist (a first conversion of the period made them): each counter's room for
    # the whole batch is taken at once when it has it, conversion by conversion otherwise.
    with_rows = session.begin_nested()
    keys = {
        (cap.id, period_start(c.at, cap.period), caps.partner_key(cap, c.partner_id)) for c in asks for cap in c.caps
    }
    for cap_id, start, key in keys:
        session.add(CapCounter(cap_id=cap_id, period_start=start, partner_key=key, used=0))
    session.flush()
    assert caps.take_room(session, asks) == expected
    assert {k: v for k, v in counters().items() if v} == {k: v for k, v in expected_counters.items() if v}
    with_rows.rollback()
