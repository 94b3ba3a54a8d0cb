"""Report figures, grouping, currencies and scoping, on rows written straight with the models."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy.orm import Session

from network.auth import SYSTEM, Principal, Role
from network.errors import Forbidden, NotFound, ValidationError
from network.offers import service as offers
from network.reports import service
from tests.factories import make_offer
from tests.reports.conftest import (
    D1,
    D2,
    END,
    START,
    World,
    add_click,
    add_conversion,
    add_impressions,
    at,
    by,
    make_link,
)

HIDDEN = object()


def _report(session: Session, principal: Principal, **kwargs: Any) -> list[dict[str, Any]]:
    kwargs.setdefault("start", START)
    kwargs.setdefault("end", END)
    kwargs.setdefault("group_by", [])
    return service.report(session, principal, **kwargs)


# ---- each metric, for each role ------------------------------------------------------------------


@pytest.fixture
def small(session: Session, world: World) -> World:
    """4 clicks (3 unique), 200 impressions, and one conversion in each status."""
    link = make_link(session, offer=world.offer, partner=world.partner, sub1="a")
    for i in range(3):
        add_click(session, link, when=at(D1, 10, i))
    add_click(session, link, when=at(D1, 11), unique=False, bot=True)
    add_impressions(session, link, day=D1, count=200)
    add_conversion(session, link, when=at(D1, 13), status="approved", amount=10000)
    add_conversion(session, link, when=at(D1, 14), status="pending", amount=5000)
    add_conversion(session, link, when=at(D1, 15), status="rejected", amount=9999)
    add_conversion(session, link, when=at(D1, 16), status="reversed", amount=7777)
    return world


_ADMIN = {
    "clicks": 4,
    "unique_clicks": 3,
    "impressions": 200,
    "conversions": 2,  # pending + approved
    "approved": 1,
    "sale_amount": "150.00",
    "revenue": "16.00",
    "payout": "10.00",
    "profit": "6.00",
    "cr": "66.67",  # 2 / 3 unique clicks
    "epc": "2.5000",  # 10.00 payout / 4 clicks
    "ctr": "2.00",  # 4 / 200
    "roas": "9.38",  # 150.00 / 16.00 = 9.375, half-up
}
_CASES = (
    [("admin", m, v) for m, v in _ADMIN.items()]
    + [("finance", m, v) for m, v in _ADMIN.items()]
    + [("brand", m, HIDDEN if m in ("payout", "profit") else v) for m, v in _ADMIN.items() if m != "epc"]
    + [("brand", "epc", "4.0000")]  # its cost per click: 16.00 / 4
    + [("partner", m, HIDDEN if m in ("sale_amount", "revenue", "profit", "roas") else v) for m, v in _ADMIN.items()]
)


@pytest.mark.parametrize(("role", "metric", "expected"), _CASES)
def test_each_metric_on_a_small_dataset(session: Session, small: World, role: str, metric: str, expected: Any) -> None:
    (row,) = _report(session, small.principal(role))
    assert row["currency"] == "USD"
    if expected is HIDDEN:
        assert metric not in row
    else:
        assert row[metric] == expected


def test_ratios_are_null_when_there_is_nothing_to_divide_by(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_conversion(session, link, when=at(D1), revenue=0, payout=0)
    (row,) = _report(session, world.admin)
    assert (row["clicks"], row["conversions"]) == (0, 1)
    assert row["cr"] is None and row["epc"] is None and row["ctr"] is None and row["roas"] is None


def test_no_traffic_means_no_rows(session: Session, world: World) -> None:
    assert _report(session, world.admin, group_by=["day", "offer"]) == []


# ---- grouping by each dimension --------------------------------------------------------------------


@pytest.fixture
def spread(session: Session, world: World) -> World:
    """Clicks and conversions that differ in every dimension (see the expectations below)."""
    l1 = make_link(
        session, offer=world.offer, partner=world.partner, sub1="a", sub2="x2", sub3="x3", sub4="x4", sub5="x5"
    )
    l2 = make_link(session, offer=world.second_offer, partner=world.other_partner)
    c1 = add_click(session, l1, when=at(D1, 10), country="US", device="desktop")
    c2 = add_click(session, l1, when=at(D1, 11), sub1="b", country="DE", device="mobile")
    add_click(session, l2, when=at(D2, 9), country="US", device="mobile", unique=False)
    c4 = add_click(session, l2, when=at(D2, 23, 59, 59), device="tablet")
    add_impressions(session, l1, day=D1, count=100)
    add_impressions(session, l2, day=D2, count=50)
    add_conversion(session, l1, click=c1, when=at(D1, 12), status="approved")
    add_conversion(session, l1, click=c2, when=at(D2, 1), status="pending")
    add_conversion(session, l2, click=c4, when=at(D2, 23, 59, 59), status="rejected")
    return world


# value -> (clicks, conversions, impressions); None impressions: not split by country or device.
_BY_DIMENSION: dict[str, dict[Any, tuple[int, int, int | None]]] = {
    "day": {"2026-03-02": (2, 1, 100), "2026-03-03": (2, 1, 50)},
    "sub1": {"a": (1, 1, 100), "b": (1, 1, 0), None: (2, 0, 50)},
    "sub2": {"x2": (2, 2, 100), None: (2, 0, 50)},
    "sub3": {"x3": (2, 2, 100), None: (2, 0, 50)},
    "sub4": {"x4": (2, 2, 100), None: (2, 0, 50)},
    "sub5": {"x5": (2, 2, 100), None: (2, 0, 50)},
    "country": {"US": (2, 1, None), "DE": (1, 1, None), None: (1, 0, None)},
    "device": {"desktop": (1, 1, None), "mobile": (2, 1, None), "tablet": (1, 0, None)},
}


@pytest.mark.parametrize("dimension", sorted(_BY_DIMENSION))
def test_grouping_by_each_dimension(session: Session, spread: World, dimension: str) -> None:
    rows = _report(session, spread.admin, group_by=[dimension])
    got = {row[dimension]: (row["clicks"], row["conversions"], row["impressions"]) for row in rows}
    assert got == _BY_DIMENSION[dimension]


@pytest.mark.parametrize(("dimension", "column"), [("offer", "offer_id"), ("partner", "partner_id")])
def test_grouping_by_offer_and_partner(session: Session, spread: World, dimension: str, column: str) -> None:
    rows = _report(session, spread.admin, group_by=[dimension])
    first = spread.offer.id if dimension == "offer" else spread.partner.id
    second = spread.second_offer.id if dimension == "offer" else spread.other_partner.id
    got = {row[column]: (row["clicks"], row["unique_clicks"], row["conversions"], row["impressions"]) for row in rows}
    assert got == {first: (2, 2, 2, 100), second: (2, 1, 0, 50)}


def test_grouping_by_several_dimensions_orders_rows(session: Session, spread: World) -> None:
    rows = _report(session, spread.admin, group_by=["day", "sub1"])
    keys = [(r["day"], r["sub1"]) for r in rows]
    # In group_by order, nulls last, on both databases.
    assert keys == [("2026-03-02", "a"), ("2026-03-02", "b"), ("2026-03-03", "b"), ("2026-03-03", None)]
    assert [r["clicks"] for r in rows] == [1, 1, 0, 2]


def test_conversion_on_a_day_without_its_clicks_gets_its_own_row(session: Session, spread: World) -> None:
    rows = by(_report(session, spread.admin, group_by=["day", "sub1"]), "day", "sub1")
    # c2 was clicked on D1 with sub1 "b"; its conversion came on D2: a D2/"b" row with no clicks.
    assert rows[("2026-03-03", "b")]["conversions"] == 1
    assert rows[("2026-03-03", "b")]["clicks"] == 0
    assert rows[("2026-03-02", "b")]["conversions"] == 0


def test_conversion_without_a_click_row_takes_its_links_sub_ids(session: Session, world: World) -> None:
    # Click rows are written in batches: a conversion may arrive before its click's row.
    link = make_link(session, offer=world.offer, partner=world.partner, sub1="spring", sub3="s3")
    add_conversion(session, link, when=at(D1), click_id="not-written-yet")
    (row,) = _report(session, world.admin, group_by=["sub1", "sub3"])
    assert (row["sub1"], row["sub3"], row["conversions"]) == ("spring", "s3", 1)
    (row,) = _report(session, world.admin, group_by=["country", "device"])
    assert (row["country"], row["device"], row["conversions"]) == (None, None, 1)


def test_unknown_group_by_is_400_naming_the_field(session: Session, world: World) -> None:
    with pytest.raises(ValidationError) as info:
        _report(session, world.admin, group_by=["day", "hour"])
    assert info.value.field == "group_by"


# ---- currencies -----------------------------------------------------------------------------------


def test_money_is_never_summed_across_currencies(session: Session, world: World) -> None:
    usd = make_link(session, offer=world.offer, partner=world.partner)
    eur = make_link(session, offer=world.eur_offer, partner=world.partner)
    add_click(session, usd, when=at(D1))
    add_click(session, eur, when=at(D1))
    add_click(session, eur, when=at(D1, 13))
    add_conversion(session, usd, when=at(D1), payout=500, revenue=800, amount=10000)
    add_conversion(session, eur, when=at(D1), payout=1200, revenue=1500, amount=3000)
    for group_by in ([], ["partner"], ["day"]):
        rows = by(_report(session, world.admin, group_by=group_by), "currency")
        assert set(rows) == {"USD", "EUR"}
        assert (rows["USD"]["payout"], rows["USD"]["revenue"], rows["USD"]["clicks"]) == ("5.00", "8.00", 1)
        assert (rows["EUR"]["payout"], rows["EUR"]["revenue"], rows["EUR"]["clicks"]) == ("12.00", "15.00", 2)
        assert rows["EUR"]["epc"] == "6.0000"


def test_zero_decimal_currency_is_formatted_in_its_own_units(session: Session, world: World) -> None:
    offer = make_offer(
        session,
        brand=world.brand,
        currency="JPY",
        name="Yen sale",
        events=[{"key": "sale", "model": "cpa", "payout": "500", "revenue": "800"}],
    )
    link = make_link(session, offer=offer, partner=world.partner)
    add_click(session, link, when=at(D1))
    add_conversion(session, link, when=at(D1), payout=500, revenue=800, amount=12345)
    (row,) = _report(session, world.admin)
    assert (row["currency"], row["payout"], row["revenue"], row["sale_amount"], row["epc"]) == (
        "JPY",
        "500",
        "800",
        "12345",
        "500.00",
    )


# ---- scoping ---------------------------------------------------------------------------------------


@pytest.fixture
def shared(session: Session, world: World) -> World:
    """Traffic of both partners on the brand's offer and on another brand's offer."""
    for offer in (world.offer, world.foreign_offer):
        for partner in (world.partner, world.other_partner):
            link = make_link(session, offer=offer, partner=partner)
            add_click(session, link, when=at(D1))
            add_conversion(session, link, when=at(D1), payout=100, revenue=300)
    return world


def test_admin_and_finance_see_everything(session: Session, shared: World) -> None:
    for principal in (shared.admin, shared.finance):
        rows = _report(session, principal, group_by=["offer", "partner"])
        assert len(rows) == 4
        assert sum(r["clicks"] for r in rows) == 4


def test_brand_sees_only_its_offers_and_its_cost(session: Session, shared: World) -> None:
    rows = _report(session, shared.brand_principal, group_by=["offer", "partner"])
    assert {r["offer_id"] for r in rows} == {shared.offer.id}
    assert {r["partner_id"] for r in rows} == {shared.partner.id, shared.other_partner.id}
    for row in rows:
        assert "payout" not in row and "profit" not in row
        assert row["revenue"] == "3.00"


def test_partner_sees_only_its_rows_and_its_payout(session: Session, shared: World) -> None:
    rows = _report(session, shared.partner_principal, group_by=["offer", "partner"])
    assert {r["partner_id"] for r in rows} == {shared.partner.id}
    assert {r["offer_id"] for r in rows} == {shared.offer.id, shared.foreign_offer.id}
    for row in rows:
        assert row["payout"] == "1.00"
        assert not {"revenue", "profit", "sale_amount", "roas"} & set(row)


def test_filters_narrow_what_the_caller_may_see(session: Session, shared: World) -> None:
    rows = _report(session, shared.admin, offer_id=shared.offer.id, partner_id=shared.other_partner.id)
    assert [r["clicks"] for r in rows] == [1]
    rows = _report(session, shared.brand_principal, partner_id=shared.other_partner.id)
    assert [r["clicks"] for r in rows] == [1]
    # A partner that never ran the brand's offers: nothing, and nothing said about it.
    assert _report(session, shared.brand_principal, partner_id=999_999) == []


def test_another_brands_offer_filter_is_404(session: Session, shared: World) -> None:
    with pytest.raises(NotFound):
        _report(session, shared.brand_principal, offer_id=shared.foreign_offer.id)


def test_partner_filtering_by_another_partner_is_404(session: Session, shared: World) -> None:
    with pytest.raises(NotFound):
        _report(session, shared.partner_principal, partner_id=shared.other_partner.id)
    rows = _report(session, shared.partner_principal, partner_id=shared.partner.id)
    assert sum(r["clicks"] for r in rows) == 2


def test_partner_filtering_by_a_private_offer_it_cannot_see_is_404(session: Session, world: World) -> None:
    with pytest.raises(NotFound):
        _report(session, world.partner_principal, offer_id=world.foreign_offer.id)


def test_partner_may_filter_by_an_offer_it_ran_after_it_was_paused(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=at(D1))
    offers.change_status(session, SYSTEM, world.offer.id, "pause")
    (row,) = _report(session, world.partner_principal, offer_id=world.offer.id)
    assert row["clicks"] == 1
    with pytest.raises(NotFound):
        _report(session, world.partner_principal, offer_id=world.second_offer.id + 10_000)


def test_unknown_offer_or_partner_is_404_for_admin(session: Session, world: World) -> None:
    with pytest.raises(NotFound):
        _report(session, world.admin, offer_id=999_999)
    with pytest.raises(NotFound):
        _report(session, world.admin, partner_id=999_999)


def test_a_key_bound_to_no_tenant_may_not_report(session: Session, world: World) -> None:
    with pytest.raises(Forbidden):
        _report(session, Principal(Role.BRAND, key_id=9))


def test_country_filter_keeps_clicks_and_conversions_of_that_country(session: Session, spread: World) -> None:
    (row,) = _report(session, spread.admin, country="us")
    assert (row["clicks"], row["conversions"], row["impressions"], row["ctr"]) == (2, 1, None, None)


# ---- the period ------------------------------------------------------------------------------------


def test_period_is_start_inclusive_end_exclusive(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=at(D1, 0))
    add_click(session, link, when=at(D2, 0))
    add_conversion(session, link, when=at(D2, 0))
    (row,) = _report(session, world.admin, start=at(D1, 0), end=at(D2, 0))
    assert (row["clicks"], row["conversions"]) == (1, 0)


def test_days_are_utc_whatever_the_offset_asked_with(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=at(D1, 23, 30))
    tokyo = dt.timezone(dt.timedelta(hours=9))
    rows = _report(session, world.admin, start=dt.datetime(2026, 3, 2, 9, tzinfo=tokyo), group_by=["day"])
    assert [r["day"] for r in rows] == ["2026-03-02"]


def test_impressions_count_for_every_day_the_period_touches(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_impressions(session, link, day=D1, count=100)
    add_impressions(session, link, day=D2, count=7)
    (row,) = _report(session, world.admin, start=at(D1, 12), end=at(D2, 0))
    assert row["impressions"] == 100
    (row,) = _report(session, world.admin, start=at(D1, 12), end=at(D2, 0, 0, 1))
    assert row["impressions"] == 107


def test_default_period_is_the_last_seven_days(session: Session, world: World, frozen_clock: Any) -> None:
    frozen_clock(at(D2, 12))
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=at(D2, 12) - dt.timedelta(days=3))
    add_click(session, link, when=at(D2, 12) - dt.timedelta(days=8))
    (row,) = service.report(session, world.admin, group_by=[])
    assert row["clicks"] == 1


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (at(D2), at(D1), "to"),
        (at(D1), at(D1), "to"),
        (at(D1) - dt.timedelta(days=367), at(D1), "from"),
        (dt.datetime(2026, 3, 2), at(D2), "from"),
        (at(D1), dt.datetime(2026, 3, 3), "to"),
    ],
)
def test_bad_periods_are_400_naming_the_field(
    session: Session, world: World, start: dt.datetime, end: dt.datetime, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _report(session, world.admin, start=start, end=end)
    assert info.value.field == field


def test_a_full_year_is_allowed(session: Session, world: World) -> None:
    assert _report(session, world.admin, start=at(D1) - dt.timedelta(days=366), end=at(D1)) == []


# ---- paging and freshness --------------------------------------------------------------------------


def test_pages_follow_the_row_order(session: Session, spread: World) -> None:
    everything = _report(session, spread.admin, group_by=["device"])
    pages = [_report(session, spread.admin, group_by=["device"], limit=1, offset=i) for i in range(4)]
    assert [p[0] for p in pages[:3]] == everything
    assert pages[3] == []


def test_a_new_click_or_conversion_shows_in_the_next_report(session: Session, world: World) -> None:
    link = make_link(session, offer=world.offer, partner=world.partner)
    add_click(session, link, when=at(D1))
    assert _report(session, world.admin)[0]["clicks"] == 1
    add_click(session, link, when=at(D1, 13))
    add_conversion(session, link, when=at(D1, 14))
    (row,) = _report(session, world.admin)
    assert (row["clicks"], row["conversions"]) == (2, 1)
