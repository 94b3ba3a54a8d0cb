"""Pure offer rules, without a database: transitions, commissions, the loss and shape checks, URLs."""

from __future__ import annotations

import pytest

from network.offers import rules
from network.offers.rules import Figures


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        ("draft", "activate", "active"),
        ("paused", "activate", "active"),
        ("active", "activate", None),
        ("archived", "activate", None),
        ("active", "pause", "paused"),
        ("draft", "pause", None),
        ("paused", "pause", None),
        ("archived", "pause", None),
        ("draft", "archive", "archived"),
        ("active", "archive", "archived"),
        ("paused", "archive", "archived"),
        ("archived", "archive", None),
    ],
)
def test_next_status(current, action, expected):
    assert rules.next_status(current, action) == expected


@pytest.mark.parametrize(
    ("figures", "amount", "expected"),
    [
        (Figures("cpa", payout_minor=500, revenue_minor=800), None, (500, 800)),
        (Figures("cpl", payout_minor=200, revenue_minor=300), 999_999, (200, 300)),
        (Figures("cpi", payout_minor=50, revenue_minor=75), None, (50, 75)),
        # SPEC §9: 10 % / 15 % of 80.00.
        (Figures("revshare", payout_percent=100_000, revenue_percent=150_000), 8000, (800, 1200)),
        # 12.5 % of 0.04 = 0.5 cent: half-up, once per line.
        (Figures("revshare", payout_percent=125_000, revenue_percent=125_000), 4, (1, 1)),
        (
            Figures("hybrid", payout_minor=100, revenue_minor=200, payout_percent=50_000, revenue_percent=100_000),
            1000,
            (150, 300),
        ),
    ],
)
def test_commission(figures, amount, expected):
    assert rules.commission(figures, amount) == expected


@pytest.mark.parametrize("model", ["revshare", "hybrid"])
def test_percent_models_need_a_sale_amount(model):
    assert rules.needs_amount(model)
    with pytest.raises(ValueError):
        rules.commission(Figures(model, payout_percent=1, revenue_percent=1), None)


def test_an_override_replaces_only_the_payout():
    base = Figures("hybrid", payout_minor=100, revenue_minor=200, payout_percent=5, revenue_percent=10)
    assert rules.with_override(base, 150, None) == Figures("hybrid", 150, 200, 5, 10)
    assert rules.with_override(base, None, 7) == Figures("hybrid", 100, 200, 7, 10)


@pytest.mark.parametrize(
    ("figures", "problem"),
    [
        (Figures("cpa", 500, 800), None),
        (Figures("cpa", 800, 800), None),
        (Figures("cpa", 801, 800), "payout is greater than revenue"),
        (Figures("revshare", payout_percent=11, revenue_percent=10), "payout_percent is greater than revenue_percent"),
        (Figures("hybrid", 100, 200, 11, 10), "payout_percent is greater than revenue_percent"),
    ],
)
def test_loss_problem(figures, problem):
    assert rules.loss_problem(figures) == problem


@pytest.mark.parametrize(
    ("figures", "field"),
    [
        (Figures("cpa", 1, 1), None),
        (Figures("cpa", 1, 1, payout_percent=1), "payout_percent"),
        (Figures("revshare", payout_percent=1, revenue_percent=2), None),
        (Figures("revshare", payout_minor=1, payout_percent=1, revenue_percent=2), "payout"),
        # The field named is the one given.
        (Figures("cpa", 1, 1, revenue_percent=1), "revenue_percent"),
        (Figures("revshare", revenue_minor=1, payout_percent=1, revenue_percent=2), "revenue"),
        (Figures("hybrid", 1, 1, 1, 1), None),
    ],
)
def test_shape_problem(figures, field):
    problem = rules.shape_problem(figures)
    assert (problem[0] if problem else None) == field


@pytest.mark.parametrize(
    ("host", "normal"),
    [
        ("Shop.Example", "shop.example"),
        ("shop.example.", "shop.example"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("shop.example@evil.example", None),
        ("https://shop.example", None),
        ("shop.example/path", None),
        ("shop..example", None),
        ("", None),
        ("a" * 64 + ".example", None),
    ],
)
def test_normalize_host(host, normal):
    assert rules.normalize_host(host) == normal


@pytest.mark.parametrize(
    ("url", "macros", "ok"),
    [
        ("https://shop.example/l?c={click_id}&s={sub5}", True, True),
        ("https://shop.example/l?c={click_id}", False, False),
        ("https://shop.example:8443/", False, True),
        ("https://shop.example:99999/", False, False),
        ("https://{sub1}.example/", True, False),
        ("https://shop.example/{payout}", True, False),
        ("javascript:alert(1)", True, False),
        ("data:text/html,hi", True, False),
        ("//shop.example/", True, False),
        ("https://a@shop.example/", True, False),
        ("https://shop.example/\n", True, False),
        ("https:///nohost", True, False),
    ],
)
def test_url_problem(url, macros, ok):
    assert (rules.url_problem(url, macros=macros) is None) is ok


@pytest.mark.parametrize(
    ("active", "status", "visibility", "approved", "expected"),
    [
        (True, "active", "public", False, True),
        (True, "active", "approval", False, False),
        (True, "active", "approval", True, True),
        (True, "active", "private", True, True),
        (True, "active", "private", False, False),
        (False, "active", "public", True, False),
        (True, "paused", "public", True, False),
        (True, "draft", "private", True, False),
        (True, "archived", "public", False, False),
    ],
)
def test_may_run(active, status, visibility, approved, expected):
    assert (
        rules.may_run(partner_active=active, offer_status=status, visibility=visibility, approved=approved) is expected
    )
