"""The pure rules of attribution beyond the click: recurring terms, coupon codes, who wins."""

from __future__ import annotations

import datetime as dt

import pytest

from network.clock import UTC
from network.conversions import rules as conversion_rules
from network.customers import rules


def _at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("at", "months", "expected"),
    [
        (_at(2026, 1, 15, 9), 1, _at(2026, 2, 15, 9)),
        (_at(2026, 1, 31), 1, _at(2026, 2, 28)),
        (_at(2028, 1, 31), 1, _at(2028, 2, 29)),
        (_at(2026, 11, 30), 3, _at(2027, 2, 28)),
        (_at(2026, 3, 10), 12, _at(2027, 3, 10)),
        (_at(2026, 12, 1), 25, _at(2029, 1, 1)),
    ],
)
def test_add_months_moves_calendar_months_and_clamps_the_day(at: dt.datetime, months: int, expected: dt.datetime):
    assert rules.add_months(at, months) == expected


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (_at(2026, 4, 9, 23, 59), 1, None),
        (_at(2026, 4, 10), 1, "recurring_ended"),
        (_at(2027, 3, 9), 12, None),
        (_at(2027, 3, 10), 12, "recurring_ended"),
        (_at(2099, 1, 1), None, None),
    ],
)
def test_recurring_terms_end_n_months_after_the_binding(now: dt.datetime, months: int | None, expected: str | None):
    assert rules.recurring_reason(bound_at=_at(2026, 3, 10), now=now, months=months) == expected


@pytest.mark.parametrize(
    ("attributed_by", "conversions", "expected"),
    [("customer", 3, True), ("customer", None, False), ("click", 3, False), ("coupon", 3, False)],
)
def test_only_a_customers_conversions_take_turns_of_first_n(
    attributed_by: str, conversions: int | None, expected: bool
):
    assert rules.turn_needed(attributed_by=attributed_by, conversions=conversions) is expected


@pytest.mark.parametrize(
    ("code", "ok"),
    [("SPRING10", True), ("spring-10_x", True), ("a" * 64, True), ("a" * 65, False), ("", False),
     ("SPRING 10", False), ("ÉTÉ", False), ("10%OFF", False), ("x\n", False)],
)  # fmt: skip
def test_coupon_codes_are_ascii_letters_digits_dash_underscore(code: str, ok: bool):
    assert (rules.code_problem(code) is None) is ok


def test_coupon_codes_match_whatever_the_case():
    assert rules.code_key("Spring10") == rules.code_key("SPRING10") == "spring10"


@pytest.mark.parametrize(
    ("rule", "click_partner", "coupon_partner", "wins"),
    [("click", 1, 2, False), ("coupon", 1, 2, True), ("coupon", 1, 1, False), ("click", 1, 1, False)],
)
def test_the_offers_coupon_rule_decides_between_a_click_and_another_partners_coupon(
    rule: str, click_partner: int, coupon_partner: int, wins: bool
):
    assert rules.coupon_wins(rule=rule, click_partner_id=click_partner, coupon_partner_id=coupon_partner) is wins


NOW = _at(2026, 3, 10, 12)


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        # Without a click: no window, no speed check; the rest holds.
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="customer", min_seconds=60), None),
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="coupon", window_days=0), None),
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="coupon", offer_status="paused"),
         "offer_inactive"),
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="customer", partner_approved=False),
         "partner_not_approved"),
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="customer", currency="EUR"),
         "currency_mismatch"),
        (conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="customer", recurring="recurring_ended"),
         "recurring_ended"),
        # A click's conversion without its click is still unknown.
        (conversion_rules.Facts(now=NOW, clicked_at=None), "unknown_click"),
    ],
)  # fmt: skip
def test_a_conversion_without_a_click_is_judged_on_everything_but_the_clicks_checks(
    facts: conversion_rules.Facts, reason: str | None
):
    assert conversion_rules.reject_reason(facts) == reason
    assert conversion_rules.reject_reason(facts, take_room=lambda: False) == (reason or "cap_reached")


def test_recurring_ended_comes_before_the_caps_so_it_takes_no_room():
    taken = []
    facts = conversion_rules.Facts(now=NOW, clicked_at=None, attributed_by="customer", recurring="recurring_ended")
    assert conversion_rules.reject_reason(facts, take_room=lambda: taken.append(1) or True) == "recurring_ended"
    assert taken == []
