"""Hypothesis state machine: postbacks, replays, status changes, reversals and holds against a model of
what each partner has earned (approved payout per currency, from the conversions table)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from network import clock
from network.clock import UTC
from network.conversions.jobs import mature_holds
from network.conversions.models import Conversion
from network.partners.models import Partner
from tests.conversions.conftest import SECRET, make_click, make_link
from tests.conversions.invariants import check_invariants
from tests.factories import Api, make_brand, make_key, make_offer, make_partner

START = dt.datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
DAILY_CAP = 3


@dataclass
class Offer:
    id: int
    currency: str
    hold_days: int
    #: revshare percent, or a flat payout in minor units.
    percent: int | None
    flat: int | None
    links: dict[int, Any]  # partner id -> link

    def payout(self, amount_minor: int) -> int:
        if self.percent is not None:
            exact = Decimal(amount_minor) * self.percent / 100
            return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))
        assert self.flat is not None
        return self.flat


@dataclass
class Conv:
    id: int
    offer: Offer
    partner_id: int
    click_id: str
    txn_id: str | None
    amount: str
    payout: int
    status: str
    created: dt.datetime
    hold_until: dt.datetime | None


def test_partner_earnings_match_a_model(client: Any, session: Any) -> None:
    class Postbacks(RuleBasedStateMachine):
        conversions = Bundle("conversions")

        @initialize()
        def world(self) -> None:
            # Each example runs in a savepoint of the test's transaction, rolled back at its end,
            # so jobs that scan every conversion (mature_holds) see this example's only.
            self.example = session.begin_nested()
            self.now = START
            clock.freeze(self.now)
            self.brand = make_brand(session, name="Model Brand")
            self.admin = Api(client, make_key(session, role="admin"))
            self.partners = [make_partner(session, name=f"P{i}").id for i in range(2)]
            usd = make_offer(
                session, brand=self.brand, currency="USD",
                events=[{"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}],
                caps=[{"metric": "conversions", "period": "day", "limit": DAILY_CAP}],
            )  # fmt: skip
            eur = make_offer(
                session, brand=self.brand, currency="EUR", hold_days=2,
                events=[{"key": "sale", "model": "cpa", "payout": "4.00", "revenue": "6.00"}],
            )  # fmt: skip
            self.offers = [
                Offer(usd.id, "USD", 0, 10, None, {}),
                Offer(eur.id, "EUR", 2, None, 400, {}),
            ]
            for offer, row in zip(self.offers, (usd, eur), strict=True):
                for partner_id in self.partners:
                    offer.links[partner_id] = make_link(session, offer=row, partner=session.get(Partner, partner_id))
            self.model: dict[int, Conv] = {}
            self.accepted_per_day: Counter[tuple[int, dt.date]] = Counter()
            self.txn = 0

        def _send(self, **params: Any) -> Any:
            params = {k: v for k, v in params.items() if v is not None}
            return client.get("/postback", query_string={**params, "token": self.brand.postback_token})

        @rule(
            target=conversions,
            offer_index=st.integers(0, 1),
            partner_index=st.integers(0, 1),
            cents=st.integers(1, 100_000),
            with_txn=st.booleans(),
        )
        def new_conversion(self, offer_index: int, partner_index: int, cents: int, with_txn: bool) -> Any:
            offer, partner_id = self.offers[offer_index], self.partners[partner_index]
            click = make_click(session, offer.links[partner_id], at=self.now - dt.timedelta(hours=1))
            amount = f"{cents // 100}.{cents % 100:02d}"
            self.txn += 1
            txn_id = f"T{self.txn}" if with_txn else None
            r = self._send(click_id=click, event="sale", amount=amount, txn_id=txn_id)
            assert r.status_code == 200, r.json
            day = (offer.id, self.now.date())
            if offer.id == self.offers[0].id and self.accepted_per_day[day] >= DAILY_CAP:
                expected = ("rejected", "cap_reached")
                payout = 0
            else:
                self.accepted_per_day[day] += 1
                expected = ("pending", None) if offer.hold_days else ("approved", None)
                payout = offer.payout(int(cents))
            assert (r.json["status"], r.json["reason"], r.json["duplicate"]) == (*expected, False)
            hold = self.now + dt.timedelta(days=offer.hold_days) if expected[0] == "pending" else None
            conv = Conv(r.json["conversion_id"], offer, partner_id, click, txn_id, amount, payout, expected[0],
                        self.now, hold)  # fmt: skip
            self.model[conv.id] = conv
            return conv

        @rule(conv=conversions)
        def replay(self, conv: Conv) -> None:
            r = self._send(click_id=conv.click_id, event="sale", amount=conv.amount, txn_id=conv.txn_id)
            assert r.status_code == 200
            assert (r.json["conversion_id"], r.json["status"], r.json["duplicate"]) == (conv.id, conv.status, True)

        @rule(conv=conversions)
        def replay_with_another_amount(self, conv: Conv) -> None:
            if conv.txn_id is None:
                return
            r = self._send(click_id=conv.click_id, event="sale", amount="999999.99", txn_id=conv.txn_id)
            assert r.status_code == 409

        @rule(conv=conversions, target_status=st.sampled_from(["approved", "rejected", "reversed"]))
        def brand_or_admin_sets_status(self, conv: Conv, target_status: str) -> None:
            r = self.admin.post(f"/api/v1/conversions/{conv.id}/status", json={"status": target_status})
            allowed = {"approved": {"pending"}, "rejected": {"pending", "approved"}, "reversed": {"approved"}}
            if conv.status == target_status:
                assert r.status_code == 200
            elif conv.status in allowed[target_status]:
                assert r.status_code == 200, r.json
                conv.status, conv.hold_until = target_status, None
            else:
                assert r.status_code == 409, r.json

        @rule(conv=conversions, requested=st.sampled_from(["reversed", "rejected"]))
        def brand_undoes_by_postback(self, conv: Conv, requested: str) -> None:
            if conv.txn_id is None:
                return
            r = self._send(txn_id=conv.txn_id, status=requested)
            assert r.status_code == 200, r.json
            if conv.status in ("rejected", "reversed"):
                assert r.json["duplicate"] is True
            else:
                conv.status = "rejected" if conv.status == "pending" else requested
                conv.hold_until = None
            assert (r.json["conversion_id"], r.json["status"]) == (conv.id, conv.status)

        @rule(hours=st.integers(1, 72))
        def time_passes_and_holds_mature(self, hours: int) -> None:
            self.now += dt.timedelta(hours=hours)
            clock.freeze(self.now)
            matured = mature_holds(session, now=self.now)
            due = [
                c for c in self.model.values() if c.status == "pending" and c.hold_until and c.hold_until <= self.now
            ]
            for conv in due:
                conv.status, conv.hold_until = "approved", None
            assert matured == len(due)

        @invariant()
        def earnings_match(self) -> None:
            if not hasattr(self, "model"):
                return
            expected: dict[tuple[int, str], int] = defaultdict(int)
            for conv in self.model.values():
                if conv.status == "approved":
                    expected[(conv.partner_id, conv.offer.currency)] += conv.payout
            rows = session.execute(
                select(Conversion.partner_id, Conversion.currency, func.sum(Conversion.payout_minor))
                .where(Conversion.status == "approved", Conversion.partner_id.in_(self.partners))
                .group_by(Conversion.partner_id, Conversion.currency)
            ).all()
            actual = {(p, c): int(total) for p, c, total in rows if total}
            assert actual == {k: v for k, v in expected.items() if v}
            statuses = dict(
                session.execute(
                    select(Conversion.id, Conversion.status).where(Conversion.id.in_(list(self.model)))
                ).all()
            )
            assert statuses == {cid: conv.status for cid, conv in self.model.items()}

        def teardown(self) -> None:
            clock.freeze(None)
            if hasattr(self, "example"):
                check_invariants(session, SECRET)
                self.example.rollback()
                session.expire_all()

    try:
        run_state_machine_as_test(
            Postbacks,
            settings=settings(
                max_examples=30,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        clock.freeze(None)
