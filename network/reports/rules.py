"""Pure report rules: dimensions, who sees which metric, ratio arithmetic and CSV. No database, no Flask.

Definitions (what every number in a report row means):

- `clicks`: every click recorded in the period (bots and clicks sent to the fallback included);
  `unique_clicks`: those flagged unique (first from a visitor on a link in 24 h).
- `impressions`: impression counts of the UTC days the period touches. They are counted per link
  and day only, so they are null (unknown) when a report groups or filters by country or device.
- `conversions`: conversions created in the period that count, i.e. `pending` + `approved`
  (rejected and reversed ones are left out); `approved`: those already approved.
- `sale_amount`, `revenue`, `payout`: sums over the same conversions (`revenue` is what the
  brand pays the network, `payout` what partners earn); `profit` = revenue - payout. CPC/CPM
  accruals are not in these figures: they are booked to the ledger per day.
- `cr` = conversions / unique_clicks, in percent; `ctr` = clicks / impressions, in percent;
  both with 2 decimals.
- `epc`: earnings per click = payout / clicks (revenue / clicks for a brand: its cost per click),
  with two more decimals than the currency has.
- `roas` = sale_amount / revenue: what the brand sold per unit it paid the network, 2 decimals.

Every figure is the raw rows' sum: whole hours are read from the hourly rollups (network/rollups,
rolled up again whenever a row of the hour changes) and the rest from the raw rows, with the same
answer. CPC/CPM accruals are booked per day, offer and partner into the ledger
(network/payouts/accrual.py), not per hour and sub id: reports leave them out rather than split them.

Ratios are decimal strings rounded half-up, null when their denominator is 0. Money columns are
decimal strings in major units beside the row's `currency`: rows are always split by currency.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from network import money
from network.auth import Role
from network.errors import ValidationError

#: group_by value -> the column it adds to each row.
DIMENSIONS: dict[str, str] = {
    "day": "day",
    "offer": "offer_id",
    "partner": "partner_id",
    "sub1": "sub1",
    "sub2": "sub2",
    "sub3": "sub3",
    "sub4": "sub4",
    "sub5": "sub5",
    "country": "country",
    "device": "device",
}
SUBS = ("sub1", "sub2", "sub3", "sub4", "sub5")
#: Dimensions impressions do not have (they are counted per link and day).
CLICK_ONLY_DIMENSIONS = frozenset({"country", "device"})

METRICS = (
    "clicks",
    "unique_clicks",
    "impressions",
    "conversions",
    "approved",
    "sale_amount",
    "revenue",
    "payout",
    "profit",
    "cr",
    "epc",
    "ctr",
    "roas",
)
#: What each role may not see (SPEC §1): a brand never sees partners' payout (nor the network's
#: profit, which would reveal it); a partner sees its traffic and its own payout, nothing of the
#: brand's money (sale amounts, what the brand pays, the network's margin).
_HIDDEN: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(),
    Role.FINANCE: frozenset(),
    Role.BRAND: frozenset({"payout", "profit"}),
    Role.PARTNER: frozenset({"sale_amount", "revenue", "profit", "roas"}),
}
#: Values in CSV cells that a spreadsheet would run as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain decimal number (a negative profit) is data, not a formula.
_NUMBER = re.compile(r"\A-?[0-9]+(?:\.[0-9]+)?\Z")


def metrics_for(role: Role) -> tuple[str, ...]:
    """Return the metric columns `role` may see, in report order."""
    hidden = _HIDDEN[role]
    return tuple(m for m in METRICS if m not in hidden)


def parse_group_by(values: Iterable[str]) -> list[str]:
    """Return the dimensions asked for, in order and without repeats; 400 naming group_by for any other."""
    dims: list[str] = []
    for raw in values:
        value = raw.strip().lower()
        if not value:
            continue
        if value not in DIMENSIONS:
            allowed = ", ".join(DIMENSIONS)
            raise ValidationError(f"group_by: unknown dimension {raw.strip()[:40]!r}; use {allowed}", field="group_by")
        if value not in dims:
            dims.append(value)
    return dims


def columns(role: Role, group_by: Sequence[str]) -> list[str]:
    """Return the columns of a report row for `role`: dimensions, currency, then metrics."""
    return [DIMENSIONS[d] for d in group_by] + ["currency", *metrics_for(role)]


@dataclass(frozen=True, slots=True)
class Sums:
    """The additive figures of one report row (money in minor units of the row's currency)."""

    clicks: int = 0
    unique_clicks: int = 0
    #: None when impressions cannot be split the way the report asks (country, device).
    impressions: int | None = 0
    conversions: int = 0
    approved: int = 0
    sale_minor: int = 0
    revenue_minor: int = 0
    payout_minor: int = 0


def _ratio(numerator: int, denominator: int | None, *, scale: int = 1, places: int = 2) -> str | None:
    if not denominator:
        return None
    value = Decimal(numerator) * scale / Decimal(denominator)
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def percent(numerator: int, denominator: int | None) -> str | None:
    """Return numerator / denominator in percent with 2 decimals, or None when the denominator is 0."""
    return _ratio(numerator, denominator, scale=100)


def ratio(numerator: int, denominator: int | None) -> str | None:
    """Return numerator / denominator with 2 decimals, or None when the denominator is 0."""
    return _ratio(numerator, denominator)


def per_click(minor: int, clicks: int, currency: str) -> str | None:
    """Return an amount per click in major units, two decimals finer than the currency's, or None."""
    if not clicks:
        return None
    exp = money.exponent(currency)
    value = Decimal(minor) / Decimal(clicks) / (Decimal(10) ** exp)
    return str(value.quantize(Decimal(1).scaleb(-(exp + 2)), rounding=ROUND_HALF_UP))


def metric_values(role: Role, currency: str, sums: Sums) -> dict[str, Any]:
    """Return the metric columns `role` may see for one row's sums."""
    earned = sums.revenue_minor if role is Role.BRAND else sums.payout_minor
    values: dict[str, Any] = {
        "clicks": sums.clicks,
        "unique_clicks": sums.unique_clicks,
        "impressions": sums.impressions,
        "conversions": sums.conversions,
        "approved": sums.approved,
        "sale_amount": money.format_amount(sums.sale_minor, currency),
        "revenue": money.format_amount(sums.revenue_minor, currency),
        "payout": money.format_amount(sums.payout_minor, currency),
        "profit": money.format_amount(sums.revenue_minor - sums.payout_minor, currency),
        "cr": percent(sums.conversions, sums.unique_clicks),
        "epc": per_click(earned, sums.clicks, currency),
        "ctr": percent(sums.clicks, sums.impressions),
        "roas": ratio(sums.sale_minor, sums.revenue_minor),
    }
    return {name: values[name] for name in metrics_for(role)}


def dimension_value(value: Any) -> Any:
    """Return a dimension value as the API shows it (days as YYYY-MM-DD, whatever the database gave)."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        # Sub ids are partner input: never let a spreadsheet run them as a formula.
        return "'" + text
    return text


def csv_text(rows: Iterable[Mapping[str, Any]], header: Sequence[str]) -> str:
    """Return the rows as CSV with a header row; empty cells for nulls, formulas defused."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in header])
    return out.getvalue()


# ---- customers (attribution beyond the click) -----------------------------------------------------

#: The groupings a report adds customer figures to: by partner, maybe also by offer. A count of
#: distinct customers does not add up across hours or sub ids, so it is read raw, once per report.
CUSTOMER_DIMENSIONS = frozenset({"partner", "offer"})
#: `customers`: distinct customer_ids among the row's conversions that count (pending + approved)
#: created in the period; `sale_amount_per_customer`, `payout_per_customer`: what those customers'
#: conversions of the period sold and earned the partner, per customer (its value over the period).
CUSTOMER_METRICS = ("customers", "sale_amount_per_customer", "payout_per_customer")
_CUSTOMER_HIDDEN: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(),
    Role.FINANCE: frozenset(),
    Role.BRAND: frozenset({"payout_per_customer"}),
    Role.PARTNER: frozenset({"sale_amount_per_customer"}),
}


def customers_fit(group_by: Sequence[str], country: str | None) -> bool:
    """Return whether a report's rows get customer figures: grouped by partner (and maybe offer), any country."""
    return "partner" in group_by and set(group_by) <= CUSTOMER_DIMENSIONS and country is None


def customer_metrics_for(role: Role) -> tuple[str, ...]:
    """Return the customer columns `role` may see."""
    return tuple(m for m in CUSTOMER_METRICS if m not in _CUSTOMER_HIDDEN[role])


def customer_values(role: Role, currency: str, customers: int, sale_minor: int, payout_minor: int) -> dict[str, Any]:
    """Return the customer columns `role` may see for one row."""
    values = {
        "customers": customers,
        "sale_amount_per_customer": per_click(sale_minor, customers, currency),
        "payout_per_customer": per_click(payout_minor, customers, currency),
    }
    return {name: values[name] for name in customer_metrics_for(role)}
