"""Pure payout rules: the status machine, thresholds, idempotency keys, CPM rounding."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from network import money

#: Finance's actions on a payout: action -> (statuses it may start from, status it leads to).
ACTIONS: dict[str, tuple[frozenset[str], str]] = {
    "approve": (frozenset({"pending_approval"}), "approved"),
    "hold": (frozenset({"pending_approval"}), "on_hold"),
    "unhold": (frozenset({"on_hold"}), "pending_approval"),
    "cancel": (frozenset({"pending_approval", "on_hold"}), "canceled"),
}

#: Every move the status may make (SPEC §6), including the ones settlement and webhooks make.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_approval": frozenset({"approved", "on_hold", "canceled"}),
    "on_hold": frozenset({"pending_approval", "canceled"}),
    "approved": frozenset({"processing"}),
    "processing": frozenset({"paid", "failed"}),
    "paid": frozenset({"reversed"}),
    "failed": frozenset(),
    "canceled": frozenset(),
    "reversed": frozenset(),
}

#: How long a settler or recoverer owns a processing payout before another may take it over.
LEASE = dt.timedelta(minutes=5)
#: Stripe forgets an idempotency key 24 h after its first use; stay well inside that.
KEY_WINDOW = dt.timedelta(hours=23)


def may_move(current: str, target: str) -> bool:
    """Say whether a payout may go from `current` to `target`."""
    return target in TRANSITIONS.get(current, frozenset())


def action_target(action: str, current: str) -> str | None:
    """Return the status finance's `action` leads to from `current`, or None if it is not allowed."""
    sources, target = ACTIONS[action]
    return target if current in sources else None


def threshold_minor(amount: str, currency: str) -> int:
    """Return a threshold given in major units ("50.00") as minor units of `currency`, rounded up."""
    # The same setting applies in every currency, so "50.00" is 50 JPY: extra decimals round up
    # rather than being refused for a currency with fewer of them.
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise money.MoneyError(f"invalid payout threshold {amount!r}") from exc
    if not value.is_finite() or value < 0:
        raise money.MoneyError(f"invalid payout threshold {amount!r}")
    scaled = value.scaleb(money.exponent(currency))
    return max(1, int(scaled.to_integral_value(rounding=ROUND_CEILING)))


def payout_key(payout_id: int) -> str:
    """Return the idempotency key and transfer group of a payout (derived from its row id)."""
    return f"payout-{payout_id}"


def cpm_amount(impressions: int, price_per_thousand_minor: int) -> int:
    """Return what `impressions` earn at a price per 1,000, rounded half-up once."""
    return money.round_half_up(Decimal(impressions) * Decimal(price_per_thousand_minor) / 1000)


def key_expired(first_used_at: dt.datetime | None, now: dt.datetime) -> bool:
    """Say whether the gateway may have forgotten an idempotency key first used at `first_used_at`."""
    return first_used_at is None or now - first_used_at >= KEY_WINDOW
