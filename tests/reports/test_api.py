"""GET /api/v1/reports: JSON and CSV, scoping by key, and bad input answered 400 naming the field."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.reports import rules
from tests.factories import Api, make_key
from tests.reports.conftest import D1, D2, World, add_click, add_conversion, add_impressions, at, make_link

PERIOD = {"from": "2026-03-02T00:00:00Z", "to": "2026-03-04T00:00:00Z"}


@pytest.fixture
def keys(session: Session, world: World) -> dict[str, Api]:
    return {
        "admin": make_key(session, role="admin"),
        "finance": make_key(session, role="finance"),
        "brand": make_key(session, role="brand", brand=world.brand),
        "other_brand": make_key(session, role="brand", brand=world.other_brand),
        "partner": make_key(session, role="partner", partner=world.partner),
    }


@pytest.fixture
def api(client: Any, keys: dict[str, str]) -> dict[str, Api]:
    return {role: Api(client, key) for role, key in keys.items()}


@pytest.fixture
def traffic(session: Session, world: World) -> World:
    mine = make_link(session, offer=world.offer, partner=world.partner, sub1="spring")
    theirs = make_link(session, offer=world.offer, partner=world.other_partner)
    foreign = make_link(session, offer=world.foreign_offer, partner=world.other_partner)
    click = add_click(session, mine, when=at(D1, 10), country="US", device="mobile")
    add_click(session, mine, when=at(D2, 10), country="US", device="desktop")
    add_click(session, theirs, when=at(D1, 11), country="FR", device="mobile")
    add_click(session, foreign, when=at(D1, 12))
    add_impressions(session, mine, day=D1, count=40)
    add_conversion(session, mine, click=click, when=at(D1, 12), payout=500, revenue=800, amount=10000)
    add_conversion(session, theirs, when=at(D1, 13), payout=200, revenue=300)
    add_conversion(session, foreign, when=at(D1, 14), payout=900, revenue=990)
    return world


def _get(api: Api, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return api.get("/api/v1/reports", query_string={**PERIOD, **params}, headers=headers or {})


def test_admin_gets_rows_totals_and_the_period(api: dict[str, Api], traffic: World) -> None:
    response = _get(api["admin"], group_by="day,offer")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["from"] == "2026-03-02T00:00:00+00:00"
    assert body["to"] == "2026-03-04T00:00:00+00:00"
    assert body["group_by"] == ["day", "offer"]
    assert body["next_offset"] is None
    rows = {(r["day"], r["offer_id"]): r for r in body["items"]}
    assert rows[("2026-03-02", traffic.offer.id)]["clicks"] == 2
    assert rows[("2026-03-02", traffic.offer.id)]["payout"] == "7.00"
    assert rows[("2026-03-03", traffic.offer.id)]["clicks"] == 1
    (total,) = body["totals"]
    assert (total["clicks"], total["conversions"], total["payout"], total["revenue"], total["profit"]) == (
        4,
        3,
        "16.00",
        "20.90",
        "4.90",
    )


def test_brand_sees_its_offers_and_cost_never_payout(api: dict[str, Api], traffic: World) -> None:
    body = _get(api["brand"], group_by="partner").get_json()
    assert {r["partner_id"] for r in body["items"]} == {traffic.partner.id, traffic.other_partner.id}
    for row in body["items"] + body["totals"]:
        assert "payout" not in row and "profit" not in row
    (total,) = body["totals"]
    assert (total["clicks"], total["revenue"], total["sale_amount"], total["roas"]) == (3, "11.00", "100.00", "9.09")


def test_partner_sees_its_rows_and_payout_never_revenue(api: dict[str, Api], traffic: World) -> None:
    body = _get(api["partner"], group_by="partner,sub1").get_json()
    assert [(r["partner_id"], r["sub1"]) for r in body["items"]] == [(traffic.partner.id, "spring")]
    (row,) = body["items"]
    assert (row["clicks"], row["conversions"], row["payout"], row["impressions"], row["ctr"]) == (
        2,
        1,
        "5.00",
        40,
        "5.00",
    )
    for row in body["items"] + body["totals"]:
        assert not {"revenue", "profit", "sale_amount", "roas"} & set(row)


def test_other_brand_filtering_by_a_foreign_offer_gets_404(api: dict[str, Api], traffic: World) -> None:
    response = _get(api["other_brand"], offer_id=traffic.offer.id)
    assert response.status_code == 404
    assert _get(api["other_brand"]).get_json()["items"][0]["clicks"] == 1


def test_partner_filtering_by_another_partner_gets_404(api: dict[str, Api], traffic: World) -> None:
    assert _get(api["partner"], partner_id=traffic.other_partner.id).status_code == 404


def test_finance_reads_every_figure(api: dict[str, Api], traffic: World) -> None:
    (total,) = _get(api["finance"]).get_json()["totals"]
    assert set(rules.METRICS) <= set(total)


def test_no_key_is_401(client: Any, traffic: World) -> None:
    assert Api(client, None).get("/api/v1/reports").status_code == 401
    assert Api(client, "nk_admin_unknown").get("/api/v1/reports").status_code == 401


def test_csv_export_has_a_header_row_and_the_same_columns(api: dict[str, Api], traffic: World) -> None:
    response = _get(api["brand"], group_by="day,sub1", headers={"Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header = table[0]
    assert header == ["day", "sub1", "currency", *rules.metrics_for(rules.Role.BRAND)]
    assert "payout" not in header
    json_rows = _get(api["brand"], group_by="day,sub1").get_json()["items"]
    assert len(table) - 1 == len(json_rows)
    for line, row in zip(table[1:], json_rows, strict=True):
        assert line == ["" if row[c] is None else str(row[c]) for c in header]


def test_csv_by_format_parameter(api: dict[str, Api], traffic: World) -> None:
    response = _get(api["partner"], format="csv")
    assert response.mimetype == "text/csv"
    header, row = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert dict(zip(header, row, strict=True))["payout"] == "5.00"
    assert "revenue" not in header


def test_json_is_the_default_for_browsers(api: dict[str, Api], traffic: World) -> None:
    response = _get(api["admin"], headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert response.mimetype == "application/json"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "day,week"}, "group_by"),
        ({"group_by": "payout"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-03-02T00:00:00"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "2026-03-04T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "to"),
        ({"from": "2024-01-01", "to": "2026-03-02"}, "from"),
        ({"country": "USA"}, "country"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000000"}, "limit"),
        ({"sort": "amount;drop table clicks"}, "sort"),
    ],
)
def test_bad_input_is_400_naming_the_field(
    api: dict[str, Api], world: World, params: dict[str, str], field: str
) -> None:
    response = api["admin"].get("/api/v1/reports", query_string={**PERIOD, **params})
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert field in body["errors"], body
    assert field in body["message"]


def test_dates_and_an_unencoded_plus_are_understood(api: dict[str, Api], traffic: World) -> None:
    by_date = _get(api["admin"], **{"from": "2026-03-02", "to": "2026-03-02"}).get_json()
    assert (by_date["from"], by_date["to"]) == ("2026-03-02T00:00:00+00:00", "2026-03-03T00:00:00+00:00")
    assert by_date["totals"][0]["clicks"] == 3
    # `?from=2026-03-02T01:00:00+01:00` with the plus left unencoded arrives as a space.
    loose = api["admin"].get("/api/v1/reports?from=2026-03-02T01:00:00+01:00&to=2026-03-03").get_json()
    assert loose["from"] == "2026-03-02T00:00:00+00:00"


def test_paging_fields(api: dict[str, Api], traffic: World) -> None:
    first = _get(api["admin"], group_by="partner", limit=1).get_json()
    assert (len(first["items"]), first["next_offset"]) == (1, 1)
    second = _get(api["admin"], group_by="partner", limit=1, offset=1).get_json()
    assert second["items"][0]["partner_id"] != first["items"][0]["partner_id"]


def test_paging_takes_after_like_every_list_and_offset_as_its_older_name(api: dict[str, Api], traffic: World) -> None:
    first = _get(api["admin"], group_by="partner", limit=1).get_json()
    assert first["next_after"] == first["next_offset"] == 1
    by_after = _get(api["admin"], group_by="partner", limit=1, after=first["next_after"]).get_json()
    by_offset = _get(api["admin"], group_by="partner", limit=1, offset=1).get_json()
    assert by_after["items"] == by_offset["items"] and by_after["items"] != first["items"]
    both = _get(api["admin"], group_by="partner", after=1, offset=1)
    assert both.status_code == 400 and "after" in both.get_json()["errors"]
    csv_page = _get(api["admin"], {"Accept": "text/csv"}, group_by="partner", limit=1)
    assert csv_page.headers["X-Next-After"] == csv_page.headers["X-Next-Offset"] == "1"


def test_a_click_shows_in_the_very_next_request(api: dict[str, Api], session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    assert _get(api["partner"]).get_json()["items"] == []
    add_click(session, link, when=at(D1, 10))
    assert _get(api["partner"]).get_json()["items"][0]["clicks"] == 1
    add_conversion(session, link, when=at(D1, 11))
    assert _get(api["partner"]).get_json()["items"][0]["conversions"] == 1
