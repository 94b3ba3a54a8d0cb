"""Pure payout rules: finance's actions, the threshold, the key window, CPM rounding."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from network import money

#: Finance's actions on a payout: action -> (statuses it may start from, status it leads to).
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending_approval"}), "approved"),
    "hold": (frozenset({"pending_approval"}), "on_hold"),
    "unhold": (frozenset({"on_hold"}), "pending_approval"),
    "cancel": (frozenset({"pending_approval", "on_hold"}), "canceled"),
}

#: How long a settler or recoverer owns a processing payout before another may take it over.
LEASE = dt.timedelta(minutes=5)
#: Stripe forgets an idempotency key 24 h after its first use; stay well inside that.
KEY_WINDOW = dt.timedelta(hours=23)


def action_target(action: str, current: str) -> str | None:
    """Return the status finance's `action` leads to from `current`, or None if it is not allowed."""
    sources, target = ACTIONS[action]
    return target if current in sources else None


def payout_threshold(currency: str, *, setting: str, partner: str | None, offers: int | None) -> int:
    """Return the minor units a partner's available balance in `currency` must reach to be paid out.

    The most specific threshold wins: the partner's own (`payout_min_amount`, set by an admin);
    else the highest threshold among the offers whose entries the payout would hold (offers that
    set `payout_min_amount`: `offers` is their highest, already in minor units of the offer's
    currency); else the PAYOUT_MIN_AMOUNT setting. Offers without one, and entries of no offer
    (adjustments, reversed transfers), add to the balance but set no threshold.
    """
    if partner:
        return money.parse_threshold(partner, currency)
    if offers is not None:
        return offers
    return money.parse_threshold(setting, currency)


def cpm_amount(impressions: int, price_per_thousand_minor: int) -> int:
    """Return what `impressions` earn at a price per 1,000, rounded half-up once."""
    return money.round_half_up(Decimal(impressions) * Decimal(price_per_thousand_minor) / 1000)


def key_expired(first_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Say whether the gateway may have forgotten an idempotency key first used at `first_used_at`."""
    return first_used_at is None or now - first_used_at >= KEY_WINDOW
