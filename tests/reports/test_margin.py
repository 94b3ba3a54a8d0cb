"""GET /api/v1/reports/margin: revenue (the brands' ledger) against payout (the partners'), CPC and CPM
included, per brand, offer, partner and day; finance and admin only; the dimensions it lacks, said."""

from __future__ import annotations

import datetime as dt

from network.payouts import jobs
from network.tracking.models import Click
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import NOW, make_commission, make_link, make_shop, undo


def test_margin_adds_cpc_and_nets_reversals_per_brand_and_offer(client, db, session):
    shop = make_shop(session)
    shop.offer.click_payout_minor, shop.offer.click_revenue_minor = 10, 25
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")  # revenue 5.00 as well
    refunded = make_commission(session, offer=shop.offer, partner=partner, payout="2.00")
    undo(session, refunded)
    link = make_link(session, offer=shop.offer, partner=partner)
    day = NOW.date() - dt.timedelta(days=1)
    for n in range(4):
        session.add(
            Click(
                id=f"m{n}", link_id=link.id, offer_id=shop.offer.id, partner_id=partner.id,
                created_at=dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC), is_unique=True, is_bot=False,
            )
        )  # fmt: skip
    session.flush()
    jobs.accrue_traffic(db, now=NOW, days=1)
    finance = Api(client, make_key(session, role="finance"))
    period = {"from": (NOW - dt.timedelta(days=3)).isoformat(), "to": (NOW + dt.timedelta(days=1)).isoformat()}
    answer = finance.get("/api/v1/reports/margin", query_string={**period, "group_by": "brand,offer"})
    assert answer.status_code == 200, answer.json
    # Revenue: 5.00 + 2.00 - 2.00 + 4 clicks x 0.25; payout: 5.00 + 2.00 - 2.00 + 4 x 0.10.
    assert answer.json["items"] == [
        {"brand": shop.brand.id, "offer": shop.offer.id, "currency": "USD", "revenue": "6.00", "payout": "5.40",
         "profit": "0.60"}
    ]  # fmt: skip
    assert "country" in answer.json["lacking"]
    by_day = finance.get("/api/v1/reports/margin", query_string={**period, "group_by": "day"}).json["items"]
    # A day is the day an entry was booked: CPC and CPM are booked the day after their traffic.
    assert [(r["day"], r["profit"]) for r in by_day] == [(str(NOW.date()), "0.60")]
    assert finance.get("/api/v1/reports/margin", query_string={"group_by": "country"}).status_code == 400
    brand = Api(client, make_key(session, role="brand", brand=shop.brand))
    assert brand.get("/api/v1/reports/margin").status_code == 403
    assert (
        Api(client, make_key(session, role="partner", partner=partner)).get("/api/v1/reports/margin").status_code == 403
    )
