"""Pure conversion rules: the validation pipeline, fraud flags, first status, commission and transitions.

No database, no Flask: attribution gathers the facts, these functions decide. `judge` makes a
plan's facts and the conversion row they lead to, on every check but the caps (which only the
conversion that wins its dedupe key takes, when it is recorded).

API: `Facts`, `reject_reason`, `fraud_flags`, `evidence`, `holds`, `first_status`, `compute_commission`,
`judge`, `TRANSITIONS`, `can_transition`, `undo_target`, `REASONS`, `FLAGS`, `HOLD_FLAGS`, `ATTRIBUTIONS`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from network.customers.rules import recurring_reason
from network.offers.rules import ATTRIBUTIONS as ATTRIBUTIONS  # the offer's settings, judged here
from network.offers.rules import FLAGS as FLAGS
from network.offers.rules import HOLD_FLAGS, Figures, commission, with_override

#: The rejection reasons of SPEC §5, in the order they are checked.
REASONS = (
    "unknown_click",
    "offer_inactive",
    "partner_not_approved",
    "out_of_window",
    "currency_mismatch",
    "geo_mismatch",
    "too_fast",
    "recurring_ended",
    "cap_reached",
)

#: Click ids carry the click server's time; tolerate this much clock skew between servers
#: before calling a conversion "before its click".
CLOCK_SKEW = dt.timedelta(seconds=5)

#: A conversion that passes the offer's min_seconds but arrives within this multiple of it is
#: "too fast but allowed": accepted, flagged and held for review.
SUSPICIOUS_FACTOR = 2

#: Flags that hold a conversion for review whatever its offer says: over_credit (its brand is over
#: its credit limit, billing) is released by the credit job once the brand has paid.
ALWAYS_HELD = frozenset({"over_credit"})

#: Allowed status changes: target -> statuses it may be reached from.
TRANSITIONS: dict[str, frozenset[str]] = {
    "approved": frozenset({"pending"}),
    "rejected": frozenset({"pending", "approved"}),
    "reversed": frozenset({"approved"}),
}


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the pipeline needs to judge one conversion; None means unknown."""

    now: dt.datetime
    #: When the click happened, from its verified id; None for a forged, foreign or unknown click.
    clicked_at: dt.datetime | None
    offer_status: str = "active"
    #: The partner is active and may run the offer (public, or approved/invited).
    partner_approved: bool = True
    window_days: int = 30
    offer_currency: str = "USD"
    currency: str = "USD"
    #: The offer's targeted countries; empty means everywhere.
    countries: frozenset[str] = frozenset()
    #: The click's country, when the click row (or buffer) knows it.
    click_country: str | None = None
    min_seconds: int = 0
    click_is_bot: bool | None = None
    click_is_unique: bool | None = None
    #: Reported by the browser pixel rather than by the brand's server.
    pixel: bool = False
    #: How it is attributed: by a click (clicked_at is then its time), a customer or a coupon (no
    #: click: window, geo and speed do not apply); and a bound customer's recurring_ended, if so.
    attributed_by: str = "click"
    recurring: str | None = None
    #: The offer's flags that hold a conversion for review.
    hold_flags: frozenset[str] = HOLD_FLAGS
    #: When the click came from one of the partner's own addresses: the evidence (address, last seen).
    self_referral: Mapping[str, Any] | None = None
    #: The brand is over its credit limit: held for review until it pays.
    brand_held: bool = False


def elapsed(facts: Facts) -> dt.timedelta:
    """Return the time from click to conversion (never negative)."""
    assert facts.clicked_at is not None
    return max(facts.now - facts.clicked_at, dt.timedelta(0))


def reject_reason(facts: Facts, take_room: Callable[[], bool] = lambda: True) -> str | None:
    """Return the first reason of SPEC §5 the conversion fails, or None when it is accepted.

    `take_room` is called last, only when every other check passed, and says whether the caps had
    room (taking it); so a conversion rejected for another reason never uses a cap. Recording
    (recording.py) judges without it and takes room afterwards, for the winner of the dedupe key
    only: the same order, cap_reached last.
    """
    if facts.clicked_at is None and facts.attributed_by == "click":
        return "unknown_click"
    if facts.offer_status != "active":
        return "offer_inactive"
    if not facts.partner_approved:
        return "partner_not_approved"
    if _out_of_window(facts):
        return "out_of_window"
    if facts.currency != facts.offer_currency:
        return "currency_mismatch"
    if facts.countries and facts.click_country is not None and facts.click_country not in facts.countries:
        return "geo_mismatch"
    if _too_fast(facts):
        return "too_fast"
    if facts.recurring is not None:
        return facts.recurring
    if not take_room():
        return "cap_reached"
    return None


def _out_of_window(facts: Facts) -> bool:
    """Return whether the conversion is before its click or past the window (never without a click)."""
    if facts.clicked_at is None:
        return False
    return facts.now < facts.clicked_at - CLOCK_SKEW or facts.now - facts.clicked_at > dt.timedelta(
        days=facts.window_days
    )


def _too_fast(facts: Facts) -> bool:
    """Return whether the conversion came sooner after its click than min_seconds (never without a click)."""
    return facts.clicked_at is not None and elapsed(facts) < dt.timedelta(seconds=facts.min_seconds)


def fraud_flags(facts: Facts) -> list[str]:
    """Return the fraud signals of an accepted conversion (empty when it may auto-approve)."""
    flags = []
    if (
        facts.min_seconds
        and facts.clicked_at is not None
        and elapsed(facts) < dt.timedelta(seconds=facts.min_seconds * SUSPICIOUS_FACTOR)
    ):
        flags.append("too_fast")
    if facts.click_is_bot:
        flags.append("bot")
    if facts.click_is_unique is False:
        flags.append("repeat_visitor")
    if facts.pixel:
        flags.append("pixel")
    if facts.self_referral is not None:
        flags.append("self_referral")
    if facts.brand_held:
        flags.append("over_credit")
    return flags


def evidence(facts: Facts, flags: list[str]) -> dict[str, Any]:
    """Return what each of a conversion's flags was raised on, by flag (what the brand reviews)."""
    found: dict[str, Any] = {}
    for flag in flags:
        if flag == "too_fast":
            found[flag] = {"seconds": int(elapsed(facts).total_seconds()), "min_seconds": facts.min_seconds,
                           "flagged_under_seconds": facts.min_seconds * SUSPICIOUS_FACTOR}  # fmt: skip
        elif flag == "bot":
            found[flag] = {"click_is_bot": True}
        elif flag == "repeat_visitor":
            found[flag] = {"click_is_unique": False}
        elif flag == "pixel":
            found[flag] = {"source": "pixel"}
        elif flag == "self_referral" and facts.self_referral is not None:
            found[flag] = dict(facts.self_referral)
    return found


def holds(flags: Iterable[str], hold_flags: Iterable[str] = HOLD_FLAGS) -> bool:
    """Return whether any of a conversion's flags is one its offer holds for review (or ALWAYS_HELD)."""
    return not (set(hold_flags) | ALWAYS_HELD).isdisjoint(flags)


def first_status(
    reason: str | None,
    flags: list[str],
    hold_days: int,
    now: dt.datetime,
    hold_flags: Iterable[str] = HOLD_FLAGS,
) -> tuple[str, dt.datetime | None]:
    """Return (status, hold_until) for a new conversion.

    Rejected when it failed a check; pending with no hold_until (review only, never auto-approved)
    when one of its flags is one the offer holds; pending until `hold_until` when the offer holds;
    approved otherwise (a flag the offer does not hold stays on it, visible).
    """
    if reason is not None:
        return "rejected", None
    if holds(flags, hold_flags):
        return "pending", None
    if hold_days > 0:
        return "pending", now + dt.timedelta(days=hold_days)
    return "approved", None


def can_transition(current: str, target: str) -> bool:
    """Return whether a conversion may move from `current` to `target`."""
    return current in TRANSITIONS.get(target, frozenset())


def undo_target(current: str, requested: str) -> str | None:
    """Return the status a brand's `status=reversed|rejected` postback leads to, or None when it is a no-op.

    A refund of a conversion not yet approved is a rejection (nothing was credited to reverse);
    one already rejected or reversed stays as it is.
    """
    if current in ("rejected", "reversed"):
        return None
    if requested == "reversed" and current == "pending":
        return "rejected"
    return requested


def compute_commission(
    figures: Figures,
    amount_minor: int | None,
    *,
    override_payout_minor: int | None = None,
    override_payout_percent: int | None = None,
) -> tuple[int, int]:
    """Return (payout, revenue) in minor units: the event's rule with a partner's override applied."""
    if override_payout_minor is not None or override_payout_percent is not None:
        figures = with_override(figures, override_payout_minor, override_payout_percent)
    return commission(figures, amount_minor)


class Plan(Protocol):
    """What judging reads of a postback's plan (network/conversions/attribution.Plan)."""

    #: The click's verified id (its time), its link's context, and the checked parameters.
    ref: Any
    link: Any
    data: Any
    now: dt.datetime
    pixel: bool
    currency: str
    amount_minor: int | None
    attributed_by: str
    bound_at: dt.datetime | None
    coupon: str | None

    @property
    def click_id(self) -> str: ...


def judge(plan: Plan, click: Any | None) -> tuple[Facts, dict[str, Any]]:
    """Return the facts of a plan and the conversion row it makes, judged on every check but the caps.

    `click` is the click's row or buffered record (its country and flags), None when unknown.
    """
    link, now = plan.link, plan.now
    by_click = plan.attributed_by == "click"
    if not by_click:
        click = None  # another partner's click, or none: its row says nothing of this conversion
    facts = Facts(
        now=now,
        clicked_at=plan.ref.clicked_at if by_click else None,
        offer_status=link.offer_status,
        partner_approved=link.partner_approved,
        window_days=link.conversion_window_days,
        offer_currency=link.currency,
        currency=plan.currency,
        countries=link.countries,
        click_country=getattr(click, "country", None),
        min_seconds=link.min_seconds,
        click_is_bot=getattr(click, "is_bot", None),
        click_is_unique=getattr(click, "is_unique", None),
        pixel=plan.pixel,
        attributed_by=plan.attributed_by,
        recurring=_recurring(plan),
        hold_flags=link.hold_flags,
        self_referral=getattr(click, "self_referral", None),
        brand_held=link.brand_held,
    )
    reason = reject_reason(facts)
    flags = fraud_flags(facts) if reason is None else []
    status, hold_until = first_status(reason, flags, link.hold_days, now, link.hold_flags)
    payout = revenue = 0
    if reason is None:
        # A rejected conversion is worth nothing; an accepted one what its rule gives.
        assert link.model is not None
        figures = Figures(link.model, link.payout_minor, link.revenue_minor, link.payout_percent, link.revenue_percent)
        payout, revenue = compute_commission(
            figures,
            plan.amount_minor,
            override_payout_minor=link.override_payout_minor,
            override_payout_percent=link.override_payout_percent,
        )
    values: dict[str, Any] = {
        "offer_id": link.offer_id, "event_id": link.event_id, "brand_id": link.brand_id,
        "partner_id": link.partner_id, "link_id": link.link_id, "click_id": plan.data.click_id,
        "clicked_at": plan.ref.clicked_at if plan.ref is not None else None, "txn_id": plan.data.txn_id, "status": status, "reason": reason,
        "flags": flags, "currency": plan.currency, "amount_minor": plan.amount_minor, "payout_minor": payout,
        "revenue_minor": revenue, "created_at": now, "hold_until": hold_until, "status_changed_at": now,
        "evidence": evidence(facts, flags) or None,
    }  # fmt: skip
    values.update(attributed_by=plan.attributed_by, customer_id=plan.data.customer_id, coupon=plan.coupon)
    return facts, values


def _recurring(plan: Plan) -> str | None:
    """Return `recurring_ended` for a bound customer's conversion past its event's N months, else None."""
    if plan.attributed_by != "customer" or plan.bound_at is None:
        return None
    return recurring_reason(bound_at=plan.bound_at, now=plan.now, months=plan.link.recurring_months)


def self_referral_evidence(address: str | None, last_seen: dt.datetime | None) -> dict[str, Any] | None:
    """Return the evidence that a click came from its partner's own address (None: it did not).

    The brand sees the address's network (/24, or /48 for IPv6), not the partner's address itself.
    """
    if address is None or last_seen is None:
        return None
    ip = ipaddress.ip_address(address)
    network = ipaddress.ip_network(f"{address}/{24 if ip.version == 4 else 48}", strict=False)
    return {"address_network": str(network), "partner_last_seen": last_seen.isoformat()}
