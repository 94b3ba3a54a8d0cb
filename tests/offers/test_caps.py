"""Cap counters taken for many conversions at once decide as if taken one by one (offers/caps.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from network.clock import UTC, period_start
from network.offers import caps
from network.offers.models import Cap, CapCounter
from tests.factories import make_brand, make_offer, make_partner

DAY = dt.datetime(2026, 3, 10, 23, 59, tzinfo=UTC)

claims_strategy = st.lists(
    st.tuples(st.sampled_from([0, 1]), st.integers(0, 400), st.sampled_from([0, 2])),  # partner, payout, minutes
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(asked=claims_strategy)
def test_many_at_once_decide_as_one_by_one(session, dialect, asked):
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
    claims = [
        caps.Claim(rules, partners[p].id, DAY + dt.timedelta(minutes=minutes), payout) for p, payout, minutes in asked
    ]

    def counters() -> dict[tuple[int, dt.datetime, int], int]:
        session.expire_all()
        return {(c.cap_id, c.period_start, c.partner_key): c.used for c in session.scalars(select(CapCounter))}

    one_by_one = session.begin_nested()
    expected = [
        caps.consume(session, c.caps, partner_id=c.partner_id, at=c.at, payout_minor=c.payout_minor) for c in claims
    ]
    expected_counters = counters()
    one_by_one.rollback()

    at_once = session.begin_nested()
    assert caps.consume_many(session, claims) == expected
    assert {k: v for k, v in counters().items() if v} == {k: v for k, v in expected_counters.items() if v}
    at_once.rollback()

    # Taken together (each counter's whole share in one conditional UPDATE): all or nothing.
    together = session.begin_nested()
    keys = {
        (cap.id, period_start(c.at, cap.period), caps.partner_key(cap, c.partner_id)) for c in claims for cap in c.caps
    }
    for cap_id, start, key in keys:  # rows exist (a first conversion of the period made them)
        session.add(CapCounter(cap_id=cap_id, period_start=start, partner_key=key, used=0))
    session.flush()
    if dialect == "postgresql" and not all(expected):
        # There a share that does not fit fails the transaction (so a batch's COMMIT sent after it
        # cannot commit it).
        with pytest.raises(caps.NO_ROOM):
            caps.take_together(session, claims)
    else:
        assert caps.take_together(session, claims)() == all(expected)
    together.rollback()
