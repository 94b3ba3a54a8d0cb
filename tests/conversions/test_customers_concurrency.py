"""Races from several processes against PostgreSQL: a customer's renewals, a coupon's orders, first bindings."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from network.clock import UTC
from network.conversions.models import Conversion
from network.customers.models import Coupon, Customer, CustomerCount
from tests.conversions.conftest import SECRET, make_click, make_link
from tests.conversions.invariants import check_invariants
from tests.conversions.test_concurrency import PROCESSES, _race
from tests.factories import make_brand, make_offer, make_partner

pytestmark = pytest.mark.postgres_only

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)
RENEWAL = {"key": "renewal", "model": "cpa", "payout": "1.00", "revenue": "2.00"}


@pytest.fixture(autouse=True)
def _postgres_only(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("several processes racing need PostgreSQL")


def _setup(committed_db: Any, **renewal: Any) -> tuple[str, Any, Any]:
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand, events=[{**RENEWAL, **renewal}])
        link = make_link(session, offer=offer, partner=partner)
        session.expunge(link)
        return brand.postback_token, link, brand.id


def _split(paths: list[str]) -> list[tuple[dt.datetime, list[str]]]:
    return [(NOW, paths[n::PROCESSES]) for n in range(PROCESSES)]


def test_renewals_of_one_customer_at_once_never_pass_its_first_n(committed_db: Any) -> None:
    token, link, brand_id = _setup(committed_db, recurring_conversions=3)
    with committed_db.session_scope() as session:
        session.add(Customer(brand_id=brand_id, customer_id="cus_1", partner_id=link.partner_id, link_id=link.id,
                             offer_id=link.offer_id, bound_at=NOW - dt.timedelta(days=40)))  # fmt: skip
    paths = ["/postback?" + urlencode({"customer_id": "cus_1", "txn_id": f"R-{n}", "token": token}) for n in range(24)]
    answers = _race(committed_db.url, _split(paths))

    assert len(answers) == 24 and {status for status, _ in answers} == {200}
    assert Counter((b["status"], b["reason"]) for _, b in answers) == {
        ("approved", None): 3,
        ("rejected", "recurring_ended"): 21,
    }
    with committed_db.session_scope() as session:
        assert session.scalars(select(CustomerCount.used)).all() == [3]
        check_invariants(session, SECRET)


def test_one_coupon_used_by_many_orders_at_once_makes_one_conversion_per_order(committed_db: Any) -> None:
    token, link, brand_id = _setup(committed_db)
    with committed_db.session_scope() as session:
        session.add(Coupon(brand_id=brand_id, offer_id=link.offer_id, partner_id=link.partner_id, link_id=link.id,
                           code="SPRING10", code_key="spring10"))  # fmt: skip
    # 40 orders, each sent twice (a retry): 40 conversions, 40 duplicates.
    orders = ["/postback?" + urlencode({"coupon": "Spring10", "txn_id": f"O-{n}", "token": token}) for n in range(40)]
    answers = _race(committed_db.url, _split(orders + orders[::-1]))

    assert len(answers) == 80 and {status for status, _ in answers} == {200}
    assert Counter((b["status"], b["duplicate"]) for _, b in answers) == {
        ("approved", False): 40,
        ("approved", True): 40,
    }
    assert len({b["conversion_id"] for _, b in answers}) == 40
    with committed_db.session_scope() as session:
        rows = session.scalars(select(Conversion)).all()
        assert len(rows) == 40 and {(r.attributed_by, r.coupon, r.partner_id) for r in rows} == {
            ("coupon", "SPRING10", link.partner_id)
        }
        check_invariants(session, SECRET)


def test_first_conversions_of_one_customer_at_once_make_one_binding(committed_db: Any) -> None:
    token, link, _brand_id = _setup(committed_db)
    with committed_db.session_scope() as session:
        clicks = [make_click(session, link, at=NOW - dt.timedelta(hours=1)) for _ in range(20)]
    paths = [
        "/postback?" + urlencode({"click_id": c, "customer_id": "cus_1", "txn_id": f"S-{n}", "token": token})
        for n, c in enumerate(clicks)
    ]
    answers = _race(committed_db.url, _split(paths))

    assert Counter(b["status"] for _, b in answers) == {"approved": 20}
    with committed_db.session_scope() as session:
        (binding,) = session.scalars(select(Customer)).all()
        first = session.get(Conversion, binding.conversion_id)
        assert first is not None and (first.partner_id, first.link_id) == (binding.partner_id, binding.link_id)
        assert first.customer_id == "cus_1" and binding.bound_at == first.created_at
