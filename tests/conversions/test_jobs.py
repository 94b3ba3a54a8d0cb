"""The hold-maturing job: each due conversion approved exactly once, even with two schedulers at once."""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from typing import Any

from sqlalchemy import select

from network.clock import UTC
from network.conversions.jobs import mature_holds
from network.conversions.models import ConversionHistory
from network.conversions.signals import status_changed
from tests.conversions.conftest import CPL, SECRET, make_click, make_link
from tests.conversions.invariants import check_invariants
from tests.factories import make_brand, make_offer, make_partner

NOW = dt.datetime(2026, 3, 10, 12, tzinfo=UTC)


def test_two_schedulers_maturing_at_once_approve_each_conversion_once(
    committed_app: Any, committed_db: Any, frozen_clock: Any
) -> None:
    frozen_clock(NOW)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        offer = make_offer(session, brand=brand, events=[CPL], hold_days=1)
        link = make_link(session, offer=offer, partner=make_partner(session))
        clicks = [make_click(session, link, at=NOW - dt.timedelta(hours=1)) for _ in range(20)]
        token = brand.postback_token
    client = committed_app.test_client()
    for click in clicks:
        assert client.get("/postback", query_string={"click_id": click, "token": token}).json["status"] == "pending"

    approvals: list[int] = []

    def count(_sender: Any, **kwargs: Any) -> None:
        if kwargs["new_status"] == "approved":
            approvals.append(kwargs["conversion"].id)

    status_changed.connect(count)
    results: list[int] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait(timeout=10)
        with committed_db.session_scope() as session:
            results.append(mature_holds(session, now=NOW + dt.timedelta(days=2)))

    try:
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        status_changed.disconnect(count)
    assert sum(results) == 20
    assert sorted(Counter(approvals).values()) == [1] * 20
    with committed_db.session_scope() as session:
        lines = session.scalars(select(ConversionHistory).where(ConversionHistory.new_status == "approved")).all()
        assert sorted(Counter(line.conversion_id for line in lines).values()) == [1] * 20
        check_invariants(session, SECRET)
