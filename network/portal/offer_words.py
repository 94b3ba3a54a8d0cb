"""An offer's terms for a partner in words: its payouts, caps and targeting ("2.00 USD per lead; US only")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from network import money
from network.offers.models import Cap

_PERIODS = {"day": "a day", "week": "a week", "month": "a month", "lifetime": "in all"}


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _count(value: int) -> str:
    return f"{value:,}"


def event_words(event: Mapping[str, Any], currency: str) -> str:
    """Return one event's payout: "2.00 USD per lead", "10% of the sale on sale", or both (hybrid)."""
    parts = []
    if "payout" in event:
        parts.append(f"{event['payout']} {currency} per {event['key']}")
    if "payout_percent" in event:
        parts.append(f"{event['payout_percent']}% of the sale on {event['key']}")
    return " + ".join(parts)


def cap_words(cap: Cap, currency: str) -> str:
    """Return a cap: "at most 1,000 conversions a day" (", for each partner" when counted per partner)."""
    if cap.metric == "payout":
        what = f"{money.format_amount(cap.limit, currency)} {currency} of payouts"
    else:
        what = f"{_count(cap.limit)} {cap.metric}"
    each = " for each partner" if cap.scope == "partner" else ""
    return f"at most {what} {_PERIODS.get(cap.period, cap.period)}{each}"


def terms(offer: Mapping[str, Any], caps: Iterable[Cap]) -> list[str]:
    """Return an offer's terms as the partner sees them (`offer` as dump_offer gives it to the partner)."""
    currency = offer["currency"]
    out = [event_words(event, currency) for event in offer["events"]]
    if offer["click_payout"] != money.format_amount(0, currency):
        out.append(f"{offer['click_payout']} {currency} per click")
    if offer["impression_payout"] != money.format_amount(0, currency):
        out.append(f"{offer['impression_payout']} {currency} per 1,000 impressions")
    out += [cap_words(cap, currency) for cap in caps]
    if offer["countries"]:
        out.append(_and(offer["countries"]) + " only")
    if offer["devices"]:
        out.append(_and(offer["devices"]) + " only")
    return out
