"""Turn an offer's incoming fields into stored values, or raise ValidationError naming the field."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from network import money
from network.errors import ValidationError
from network.offers import rules
from network.offers.models import Offer, OfferEvent

#: Fields only an admin may set: the owner, loss leaders, the payout threshold.
ADMIN_FIELDS = ("brand_id", "allow_loss", "payout_min_amount")


def amount_field(text: str, currency: str, field: str) -> int:
    """Return a money field in minor units, or raise ValidationError naming the field."""
    try:
        return money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from exc


def percent_field(text: str, field: str) -> int:
    """Return a percentage field in 1/10,000ths of a percent, or raise ValidationError naming the field."""
    try:
        return money.parse_percent(text)
    except money.MoneyError as exc:
        raise ValidationError(f"{field}: {exc}", field=field) from exc


def check_urls(data: dict[str, Any]) -> None:
    """Raise ValidationError for a destination or fallback URL the offer may not use."""
    if "destination_url" in data:
        problem = rules.url_problem(data["destination_url"], macros=True)
        if problem:
            raise ValidationError(f"destination_url {problem}", field="destination_url")
    if data.get("fallback_url"):
        problem = rules.url_problem(data["fallback_url"], macros=False)
        if problem:
            raise ValidationError(f"fallback_url {problem}", field="fallback_url")


def domains(values: Sequence[str]) -> list[str]:
    """Return allowed_domains as sorted, distinct host names, or raise naming the one that is not."""
    hosts = []
    for value in values:
        host = rules.normalize_host(value)
        if host is None:
            raise ValidationError(f"allowed_domains: {value!r} is not a hostname", field="allowed_domains")
        hosts.append(host)
    return sorted(set(hosts))


def event_figures(data: dict[str, Any], currency: str, index: int) -> dict[str, int]:
    """Return the stored figures of events[index], or raise naming the figure its model does not fit."""
    where = f"events[{index}]"
    model = data["model"]
    figures = {
        "payout_minor": amount_field(data["payout"], currency, f"{where}.payout") if data.get("payout") else 0,
        "revenue_minor": amount_field(data["revenue"], currency, f"{where}.revenue") if data.get("revenue") else 0,
        "payout_percent": percent_field(data["payout_percent"], f"{where}.payout_percent")
        if data.get("payout_percent")
        else 0,
        "revenue_percent": percent_field(data["revenue_percent"], f"{where}.revenue_percent")
        if data.get("revenue_percent")
        else 0,
    }
    problem = rules.shape_problem(rules.Figures(model=model, **figures))
    if problem:
        raise ValidationError(f"{where}.{problem[0]}: {problem[1]}", field=f"{where}.{problem[0]}")
    if model in ("revshare", "hybrid") and not data.get("payout_percent") and not data.get("revenue_percent"):
        raise ValidationError(f"{where}: {model} needs payout_percent and revenue_percent", field=f"{where}")
    return figures


def check_loss(offer: Offer) -> None:
    """Raise ValidationError when an offer pays partners more than it earns and allow_loss is off."""
    if offer.allow_loss:
        return
    for index, event in enumerate(offer.events):
        figures = rules.Figures(
            event.model, event.payout_minor, event.revenue_minor, event.payout_percent, event.revenue_percent
        )
        problem = rules.loss_problem(figures)
        if problem:
            raise ValidationError(
                f"events[{index}]: {problem}; only an admin may allow a loss leader (allow_loss)",
                field=f"events[{index}]",
                code="loss_leader",
            )
    for name in ("click", "impression"):
        if getattr(offer, f"{name}_payout_minor") > getattr(offer, f"{name}_revenue_minor"):
            raise ValidationError(
                f"{name}_payout is greater than {name}_revenue; only an admin may allow a loss leader",
                field=f"{name}_payout",
                code="loss_leader",
            )


def cap_limit(cap: dict[str, Any], currency: str, field: str) -> int:
    """Return a cap's limit: minor units for a payout cap, a count otherwise."""
    limit = cap["limit"]
    if cap["metric"] == "payout":
        # Money arrives as a decimal string only: a JSON number would be a float.
        if not isinstance(limit, str):
            raise ValidationError(f'{field} must be a decimal string like "500.00" for a payout cap', field=field)
        return amount_field(limit, currency, field)
    if isinstance(limit, bool) or not (
        isinstance(limit, int) or (isinstance(limit, str) and limit.isascii() and limit.isdigit())
    ):
        raise ValidationError(f"{field} must be a whole number", field=field)
    if int(limit) < 0:
        raise ValidationError(f"{field} must not be negative", field=field)
    return int(limit)


def refuse_admin_fields(data: dict[str, Any]) -> None:
    """Raise ValidationError when a non-admin gives a field only an admin may set."""
    for field in ADMIN_FIELDS:
        if field in data:
            raise ValidationError(f"{field} may only be set by an admin", field=field)


def override_figures(event: OfferEvent, data: dict[str, Any], currency: str) -> tuple[int, int]:
    """Return (payout_minor, payout_percent) of an override: exactly the payout figures the event's model has."""
    flat = event.model in ("cpa", "cpl", "cpi", "hybrid")
    by_percent = event.model in ("revshare", "hybrid")
    for field, needed in (("payout", flat), ("payout_percent", by_percent)):
        given = data.get(field) not in (None, "")
        if needed and not given:
            raise ValidationError(f"{field} is required to override a {event.model} event", field=field)
        if given and not needed:
            raise ValidationError(f"a {event.model} event has no {field}", field=field)
    payout = amount_field(data["payout"], currency, "payout") if flat else 0
    payout_percent = percent_field(data["payout_percent"], "payout_percent") if by_percent else 0
    return payout, payout_percent


def check_override_loss(offer: Offer, event: OfferEvent, payout_minor: int, payout_percent: int) -> None:
    """Raise ValidationError when a partner override would make the event a loss and allow_loss is off."""
    figures = rules.with_override(
        rules.Figures(
            event.model, event.payout_minor, event.revenue_minor, event.payout_percent, event.revenue_percent
        ),
        payout_minor,
        payout_percent,
    )
    loss = rules.loss_problem(figures)
    if loss and not offer.allow_loss:
        field = "payout_percent" if "percent" in loss else "payout"
        raise ValidationError(
            f"{event.key}: a partner override's {loss}; only an admin may allow a loss leader (allow_loss)",
            field=field,
            code="loss_leader",
        )
