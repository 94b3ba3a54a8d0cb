"""The pure conversion rules, by tables: no database, no Flask."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from network import money
from network.clock import UTC
from network.conversions import rules
from network.offers.rules import Figures

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)
OK = rules.Facts(now=NOW, clicked_at=NOW - HOUR)


def facts(**changes: object) -> rules.Facts:
    return dataclasses.replace(OK, **changes)


@pytest.mark.parametrize(
    ("changes", "cap_room", "reason"),
    [
        ({}, True, None),
        ({"clicked_at": None}, True, "unknown_click"),
        ({"offer_status": "paused"}, True, "offer_inactive"),
        ({"offer_status": "archived"}, True, "offer_inactive"),
        ({"offer_status": "draft"}, True, "offer_inactive"),
        ({"partner_approved": False}, True, "partner_not_approved"),
        ({"clicked_at": NOW - dt.timedelta(days=30)}, True, None),
        ({"clicked_at": NOW - dt.timedelta(days=30, seconds=1)}, True, "out_of_window"),
        ({"window_days": 1, "clicked_at": NOW - dt.timedelta(days=2)}, True, "out_of_window"),
        # A conversion before its click (beyond clock skew between servers).
        ({"clicked_at": NOW + HOUR}, True, "out_of_window"),
        ({"clicked_at": NOW + rules.CLOCK_SKEW}, True, None),
        ({"clicked_at": NOW + rules.CLOCK_SKEW + dt.timedelta(seconds=1)}, True, "out_of_window"),
        ({"currency": "EUR"}, True, "currency_mismatch"),
        ({"countries": frozenset({"DE", "FR"}), "click_country": "US"}, True, "geo_mismatch"),
        ({"countries": frozenset({"DE", "FR"}), "click_country": "DE"}, True, None),
        # Country unknown (click row not written yet): the mismatch cannot be shown.
        ({"countries": frozenset({"DE"}), "click_country": None}, True, None),
        ({"click_country": "US"}, True, None),
        ({"min_seconds": 10, "clicked_at": NOW - dt.timedelta(seconds=9)}, True, "too_fast"),
        ({"min_seconds": 10, "clicked_at": NOW - dt.timedelta(seconds=10)}, True, None),
        ({}, False, "cap_reached"),
        # SPEC order: the earliest failing check names the reason.
        ({"clicked_at": None, "offer_status": "paused"}, False, "unknown_click"),
        ({"offer_status": "paused", "partner_approved": False}, False, "offer_inactive"),
        ({"partner_approved": False, "clicked_at": NOW + HOUR}, False, "partner_not_approved"),
        ({"clicked_at": NOW + HOUR, "currency": "EUR"}, False, "out_of_window"),
        ({"currency": "EUR", "countries": frozenset({"DE"}), "click_country": "US"}, False, "currency_mismatch"),
        (
            {"countries": frozenset({"DE"}), "click_country": "US", "min_seconds": 7200},
            False,
            "geo_mismatch",
        ),
        ({"min_seconds": 7200}, False, "too_fast"),
    ],
)
def test_reject_reason_follows_spec_order(changes: dict, cap_room: bool, reason: str | None) -> None:
    assert rules.reject_reason(facts(**changes), take_room=lambda: cap_room) == reason


@pytest.mark.parametrize(
    "changes",
    [{"clicked_at": None}, {"offer_status": "paused"}, {"currency": "EUR"}, {"min_seconds": 7200}],
)
def test_caps_are_not_taken_when_an_earlier_check_fails(changes: dict) -> None:
    taken = []
    rules.reject_reason(facts(**changes), take_room=lambda: taken.append(1) or True)
    assert taken == []


def test_caps_are_taken_once_when_everything_else_passes() -> None:
    taken = []
    assert rules.reject_reason(OK, take_room=lambda: taken.append(1) or True) is None
    assert taken == [1]


@pytest.mark.parametrize(
    ("changes", "flags"),
    [
        ({}, []),
        ({"click_is_bot": False, "click_is_unique": True}, []),
        ({"click_is_bot": True}, ["bot"]),
        ({"click_is_unique": False}, ["repeat_visitor"]),
        # Unknown click details (row not written yet) are not a signal.
        ({"click_is_bot": None, "click_is_unique": None}, []),
        # Allowed (past min_seconds) but within twice of it: too fast to trust.
        ({"min_seconds": 60, "clicked_at": NOW - dt.timedelta(seconds=90)}, ["too_fast"]),
        ({"min_seconds": 60, "clicked_at": NOW - dt.timedelta(seconds=120)}, []),
        # No min_seconds: nothing to be suspiciously near.
        ({"clicked_at": NOW}, []),
        (
            {
                "min_seconds": 60,
                "clicked_at": NOW - dt.timedelta(seconds=61),
                "click_is_bot": True,
                "click_is_unique": False,
            },
            ["too_fast", "bot", "repeat_visitor"],
        ),
    ],
)
def test_fraud_flags(changes: dict, flags: list[str]) -> None:
    assert rules.fraud_flags(facts(**changes)) == flags


@pytest.mark.parametrize(
    ("reason", "flags", "hold_days", "expected"),
    [
        (None, [], 0, ("approved", None)),
        (None, [], 7, ("pending", NOW + dt.timedelta(days=7))),
        # Flagged: pending for review, never auto-approved (no hold_until).
        (None, ["bot"], 0, ("pending", None)),
        (None, ["bot"], 7, ("pending", None)),
        ("too_fast", [], 7, ("rejected", None)),
        ("cap_reached", [], 0, ("rejected", None)),
    ],
)
def test_first_status(reason: str | None, flags: list[str], hold_days: int, expected: tuple) -> None:
    assert rules.first_status(reason, flags, hold_days, NOW) == expected


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        ("pending", "approved", True),
        ("pending", "rejected", True),
        ("approved", "rejected", True),
        ("approved", "reversed", True),
        ("pending", "reversed", False),
        ("approved", "approved", False),
        ("rejected", "approved", False),
        ("rejected", "reversed", False),
        ("reversed", "approved", False),
        ("reversed", "rejected", False),
        ("approved", "pending", False),
    ],
)
def test_transitions(current: str, target: str, allowed: bool) -> None:
    assert rules.can_transition(current, target) is allowed


@pytest.mark.parametrize(
    ("current", "requested", "target"),
    [
        ("approved", "reversed", "reversed"),
        ("approved", "rejected", "rejected"),
        ("pending", "rejected", "rejected"),
        # A refund before approval: nothing was credited, so it is a rejection.
        ("pending", "reversed", "rejected"),
        ("rejected", "reversed", None),
        ("reversed", "reversed", None),
        ("reversed", "rejected", None),
    ],
)
def test_undo_target(current: str, requested: str, target: str | None) -> None:
    assert rules.undo_target(current, requested) == target


def pct(text: str) -> int:
    return money.parse_percent(text)


@pytest.mark.parametrize(
    ("figures", "amount", "override", "expected"),
    [
        (Figures("cpa", payout_minor=500, revenue_minor=800), None, None, (500, 800)),
        (Figures("cpl", payout_minor=200, revenue_minor=300), 99_999, None, (200, 300)),
        (Figures("cpi", payout_minor=150, revenue_minor=250), None, None, (150, 250)),
        # SPEC §9: 10 % / 15 % of 80.00.
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("15")), 8000, None, (800, 1200)),
        (
            Figures("hybrid", payout_minor=100, revenue_minor=200, payout_percent=pct("5"), revenue_percent=pct("7.5")),
            10000,
            None,
            (600, 950),
        ),
        # Overrides replace the partner's payout figures; revenue stays the brand's.
        (Figures("cpa", payout_minor=500, revenue_minor=800), None, (650, 0), (650, 800)),
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("15")), 8000, (0, pct("12")), (960, 1200)),
        # Rounding once, half up, on exact ties (RELIABILITY.md 19): 12.5 % of 0.04 USD = 0.005 -> 0.01.
        (Figures("revshare", payout_percent=pct("12.5"), revenue_percent=pct("12.5")), 4, None, (1, 1)),
        # JPY (0 decimals): 10 % of 5 yen = 0.5 -> 1; 10 % of 4 = 0.4 -> 0.
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("10")), 5, None, (1, 1)),
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("10")), 4, None, (0, 0)),
        # BHD (3 decimals): 10 % of 0.015 = 0.0015 -> 0.002; 10 % of 0.025 = 0.0025 -> 0.003.
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("10")), 15, None, (2, 2)),
        (Figures("revshare", payout_percent=pct("10"), revenue_percent=pct("10")), 25, None, (3, 3)),
        # Hybrid rounds the percent part once, then adds the flat part.
        (
            Figures("hybrid", payout_minor=1, revenue_minor=1, payout_percent=pct("50"), revenue_percent=pct("50")),
            1,
            None,
            (2, 2),
        ),
    ],
)
def test_commission(figures: Figures, amount: int | None, override: tuple | None, expected: tuple) -> None:
    kwargs = {}
    if override is not None:
        kwargs = {"override_payout_minor": override[0], "override_payout_percent": override[1]}
    assert rules.compute_commission(figures, amount, **kwargs) == expected


def test_percent_commission_needs_an_amount() -> None:
    with pytest.raises(ValueError, match="amount"):
        rules.compute_commission(Figures("revshare", payout_percent=pct("10")), None)
