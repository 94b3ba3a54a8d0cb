"""Pure offer rules: status transitions and commission figures. No database, no Flask."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult

from network import money

#: Allowed offer status changes: action -> (from statuses, to status).
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "activate": (frozenset({"draft", "paused"}), "active"),
    "pause": (frozenset({"active"}), "paused"),
    "archive": (frozenset({"draft", "active", "paused"}), "archived"),
}


def next_status(current: str, action: str) -> str | None:
    """Return the status `action` leads to from `current`, or None when it is not allowed."""
    sources, target = TRANSITIONS[action]
    return target if current in sources else None


def has_access(*, partner_active: bool, visibility: str, approved: bool) -> bool:
    """Return the partner's side of `may_run`: an active partner, and either a public offer or an
    approved application or invitation (conversions judge the offer's own status apart, with a
    reason of its own)."""
    return partner_active and (visibility == "public" or approved)


def may_run(*, partner_active: bool, offer_status: str, visibility: str, approved: bool) -> bool:
    """Return whether a partner may take links for and be paid on an offer: an active offer the
    partner has access to (`has_access`)."""
    return offer_status == "active" and has_access(partner_active=partner_active, visibility=visibility,
                                                   approved=approved)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Figures:
    """What one event is worth: flat parts in minor units, percent parts in 1/10,000ths of a percent."""

    model: str
    payout_minor: int = 0
    revenue_minor: int = 0
    payout_percent: int = 0
    revenue_percent: int = 0


def needs_amount(model: str) -> bool:
    """Return whether a conversion of this model needs a sale amount."""
    return model in ("revshare", "hybrid")


def commission(figures: Figures, amount_minor: int | None) -> tuple[int, int]:
    """Return (payout, revenue) in minor units for one conversion: flat plus percent, each rounded once."""
    payout = revenue = 0
    if figures.model in ("cpa", "cpl", "cpi", "hybrid"):
        payout += figures.payout_minor
        revenue += figures.revenue_minor
    if figures.model in ("revshare", "hybrid"):
        if amount_minor is None:
            raise ValueError("a percent commission needs a sale amount")
        payout += money.percent_of(amount_minor, figures.payout_percent)
        revenue += money.percent_of(amount_minor, figures.revenue_percent)
    return payout, revenue


def with_override(figures: Figures, payout_minor: int | None, payout_percent: int | None) -> Figures:
    """Return the figures with a partner's payout override applied (revenue is the brand's, unchanged)."""
    return Figures(
        model=figures.model,
        payout_minor=figures.payout_minor if payout_minor is None else payout_minor,
        revenue_minor=figures.revenue_minor,
        payout_percent=figures.payout_percent if payout_percent is None else payout_percent,
        revenue_percent=figures.revenue_percent,
    )


def loss_problem(figures: Figures) -> str | None:
    """Return why the figures pay a partner more than the brand pays the network, or None."""
    if figures.payout_minor > figures.revenue_minor:
        return "payout is greater than revenue"
    if figures.payout_percent > figures.revenue_percent:
        return "payout_percent is greater than revenue_percent"
    return None


def shape_problem(figures: Figures) -> tuple[str, str] | None:
    """Return (field, message) when the figures do not fit the model, or None."""
    flat = figures.payout_minor or figures.revenue_minor
    percent = figures.payout_percent or figures.revenue_percent
    # The field named is one the client gave.
    if figures.model in ("cpa", "cpl", "cpi") and percent:
        field = "payout_percent" if figures.payout_percent else "revenue_percent"
        return field, f"{figures.model} pays flat amounts; percent figures are not allowed"
    if figures.model == "revshare" and flat:
        return ("payout" if figures.payout_minor else "revenue"), (
            "revshare pays percentages; flat figures are not allowed (use hybrid)"
        )
    return None


MACROS = frozenset({"click_id", "offer_id", "partner_id", "link_id", "sub1", "sub2", "sub3", "sub4", "sub5"})


def normalize_host(host: str) -> str | None:
    """Return a hostname lower-cased, IDNA-encoded and without a trailing dot, or None if invalid."""
    host = host.strip().rstrip(".").lower()
    if not host or any(c in host for c in "/\\@:?#[] \t\r\n%{}"):
        return None
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = ascii_host.split(".")
    if any(not label or len(label) > 63 for label in labels):
        return None
    return ascii_host


def url_problem(url: str, *, macros: bool) -> str | None:
    """Return why a brand URL is unusable as a redirect target, or None. Macros only after the host."""
    from urllib.parse import urlsplit

    if any(c in url for c in "\r\n\t\x00 "):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    return _host_problem(parts) or _macro_problem(url, macros=macros)


def _host_problem(parts: SplitResult) -> str | None:
    """Return why a URL's host part is unusable, or None."""
    if parts.username is not None or parts.password is not None:
        return "must not contain userinfo"
    if "{" in parts.netloc or "}" in parts.netloc:
        return "must not have macros in the host"
    if not parts.hostname or normalize_host(parts.hostname) is None:
        return "has no valid host"
    try:
        parts.port  # noqa: B018 - raises for a malformed port
    except ValueError:
        return "has an invalid port"
    return None


def _macro_problem(url: str, *, macros: bool) -> str | None:
    """Return why a URL's macros are unusable (any, when `macros` is false; an unknown one), or None."""
    if not macros and ("{" in url or "}" in url):
        return "must not contain macros"
    for name in re.findall(r"\{([^{}]*)\}", url):
        if name not in MACROS:
            return f"has unknown macro {{{name}}}"
    return None


#: Fraud signals a conversion may carry (judged in network/conversions/rules.py). "pixel": reported
#: by a browser, not authenticated by the brand (any page can fire it, with any amount).
#: "self_referral": its click came from an address the partner itself used. "anomaly": raised later
#: by the anomaly job (network/conversions/anomalies.py).
FLAGS = ("too_fast", "bot", "repeat_visitor", "pixel", "self_referral", "anomaly")
#: The flags that hold a conversion pending for review when its offer does not say (Offer.hold_flags):
#: all but the repeat visitor's (a returning customer is no fraud signal on its own).
HOLD_FLAGS = frozenset(FLAGS) - {"repeat_visitor"}
#: Which of a visitor's clicks on an offer a conversion goes to (Offer.attribution).
ATTRIBUTIONS = ("last_click", "first_click")


def hold_flags(stored: list[str] | None) -> list[str]:
    """Return an offer's hold flags in FLAGS' order: the stored ones, or HOLD_FLAGS when none are stored."""
    chosen = HOLD_FLAGS if stored is None else frozenset(stored)
    return [flag for flag in FLAGS if flag in chosen]
