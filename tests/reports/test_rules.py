"""Pure report rules: ratios, rounding, who sees what, group_by allow-list, CSV."""

from __future__ import annotations

import csv
import io

import pytest

from network.auth import Role
from network.errors import ValidationError
from network.reports import rules


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (1, 3, "33.33"),
        (2, 3, "66.67"),
        (1, 8, "12.50"),
        (1, 200, "0.50"),
        # Half-up on an exact tie: 1/800 = 0.125 %.
        (1, 800, "0.13"),
        (5, 5, "100.00"),
        (7, 0, None),
        (0, None, None),
        (0, 4, "0.00"),
    ],
)
def test_percent_rounds_half_up_and_is_null_without_a_denominator(
    numerator: int, denominator: int | None, expected: str | None
) -> None:
    assert rules.percent(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(15000, 1600, "9.38"), (1000, 400, "2.50"), (1, 3, "0.33"), (5, 0, None)],
)
def test_ratio_has_two_decimals(numerator: int, denominator: int, expected: str | None) -> None:
    assert rules.ratio(numerator, denominator) == expected


@pytest.mark.parametrize(
    ("minor", "clicks", "currency", "expected"),
    [
        (1000, 4, "USD", "2.5000"),
        (1000, 3, "USD", "3.3333"),
        (2, 3, "USD", "0.0067"),
        (1000, 3, "JPY", "333.33"),
        (1000, 3, "BHD", "0.33333"),
        (100, 0, "USD", None),
    ],
)
def test_per_click_keeps_two_more_decimals_than_the_currency(
    minor: int, clicks: int, currency: str, expected: str | None
) -> None:
    assert rules.per_click(minor, clicks, currency) == expected


def test_brand_never_gets_payout_or_profit() -> None:
    assert "payout" not in rules.metrics_for(Role.BRAND)
    assert "profit" not in rules.metrics_for(Role.BRAND)
    assert "revenue" in rules.metrics_for(Role.BRAND)


def test_partner_never_gets_the_brands_money() -> None:
    visible = set(rules.metrics_for(Role.PARTNER))
    assert visible.isdisjoint({"revenue", "profit", "sale_amount", "roas"})
    assert {"clicks", "conversions", "approved", "payout", "cr", "epc"} <= visible


@pytest.mark.parametrize("role", [Role.ADMIN, Role.FINANCE])
def test_admin_and_finance_get_every_metric(role: Role) -> None:
    assert rules.metrics_for(role) == rules.METRICS


def test_metric_values_for_a_brand_uses_its_cost_per_click() -> None:
    sums = rules.Sums(clicks=4, unique_clicks=2, impressions=100, conversions=1, revenue_minor=800, payout_minor=500)
    values = rules.metric_values(Role.BRAND, "USD", sums)
    assert values["epc"] == "2.0000"
    assert "payout" not in values


def test_group_by_keeps_order_and_drops_repeats_and_blanks() -> None:
    assert rules.parse_group_by(["Day", " offer", "", "day", "sub3"]) == ["day", "offer", "sub3"]


@pytest.mark.parametrize("value", ["week", "payout", "sub6", "offer_id", "1;drop table clicks"])
def test_unknown_group_by_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        rules.parse_group_by(["day", value])
    assert info.value.field == "group_by"
    assert info.value.status == 400


def test_columns_are_dimensions_then_currency_then_visible_metrics() -> None:
    header = rules.columns(Role.PARTNER, ["day", "partner", "sub1"])
    assert header[:4] == ["day", "partner_id", "sub1", "currency"]
    assert header[4:] == list(rules.metrics_for(Role.PARTNER))


def test_csv_has_a_header_and_empty_cells_for_nulls() -> None:
    text = rules.csv_text(
        [{"day": "2026-03-02", "currency": "USD", "cr": None, "profit": "-1.50"}], ["day", "cr", "profit"]
    )
    assert list(csv.reader(io.StringIO(text))) == [["day", "cr", "profit"], ["2026-03-02", "", "-1.50"]]


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_defuses_formulas_in_partner_supplied_text(value: str) -> None:
    text = rules.csv_text([{"sub1": value}], ["sub1"])
    assert list(csv.reader(io.StringIO(text)))[1] == ["'" + value]
