"""Customer counts and value per customer in reports grouped by partner, from real postbacks."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conversions.conftest import CPL, NOW, REVSHARE, make_click, make_shop, postback

HOUR = dt.timedelta(hours=1)
RENEWAL = {"key": "renewal", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}
PERIOD = {"from": (NOW - dt.timedelta(days=1)).isoformat(), "to": (NOW + dt.timedelta(days=1)).isoformat()}


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def test_reports_by_partner_count_customers_and_their_value_over_the_period(client, session):
    shop = make_shop(session, client, events=[REVSHARE, RENEWAL, CPL])
    for n, (customer, amount) in enumerate((("cus_1", "100.00"), ("cus_2", "30.00"))):
        click = make_click(session, shop.link, at=NOW - HOUR)
        r = postback(client, click_id=click, event="sale", amount=amount, txn_id=f"S-{n}", customer_id=customer,
                     token=shop.token)  # fmt: skip
        assert r.json["status"] == "approved"
    postback(client, event="renewal", amount="50.00", txn_id="R-1", customer_id="cus_1", token=shop.token)
    postback(client, event="lead", click_id=make_click(session, shop.link, at=NOW - HOUR), token=shop.token)

    (row,) = shop.brand_api.get("/api/v1/reports", query_string={**PERIOD, "group_by": "partner"}).json["items"]
    assert (row["customers"], row["sale_amount_per_customer"]) == (2, "90.0000")  # (100 + 50 + 30) / 2
    assert "payout_per_customer" not in row and row["conversions"] == 4
    (row,) = shop.partner_api.get("/api/v1/reports", query_string={**PERIOD, "group_by": "offer,partner"}).json["items"]
    assert (row["customers"], row["payout_per_customer"]) == (2, "9.0000") and "sale_amount_per_customer" not in row
    # Other groupings have no customer figures; CSV has the columns where JSON has them.
    (row,) = shop.brand_api.get("/api/v1/reports", query_string={**PERIOD, "group_by": "day"}).json["items"]
    assert "customers" not in row
    csv = shop.brand_api.get("/api/v1/reports", query_string={**PERIOD, "group_by": "partner", "format": "csv"})
    header, line = csv.text.splitlines()
    assert header.endswith("customers,sale_amount_per_customer") and line.endswith(",2,90.0000")
