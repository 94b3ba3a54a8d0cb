"""The payout threshold rule (network/payouts/rules.py), without a database."""

from __future__ import annotations

import pytest

from network.payouts import rules


@pytest.mark.parametrize(
    ("currency", "setting", "partner", "offers", "minor"),
    [
        ("USD", "50.00", None, None, 5000),  # the setting
        ("JPY", "50.50", None, None, 51),  # the setting, rounded up to what JPY can hold
        ("USD", "50.00", None, 10000, 10000),  # the offers' highest, already in minor units
        ("USD", "50.00", None, 1000, 1000),  # an offer may lower it too
        ("USD", "50.00", "5.00", 10000, 500),  # the partner's own wins over its offers
        ("BHD", "50.00", "0.0005", None, 1),  # the partner's, rounded up once like the setting
        ("USD", "50.00", "", 2000, 2000),  # an empty partner threshold is none
    ],
)
def test_the_most_specific_threshold_wins(currency, setting, partner, offers, minor):
    assert rules.payout_threshold(currency, setting=setting, partner=partner, offers=offers) == minor
