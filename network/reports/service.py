"""Reports: clicks, impressions and conversions aggregated in SQL, scoped to the caller.

One query per report: each source (hourly rollups of whole hours, raw clicks, impression counts
and raw conversions of the rest: network/reports/sources.py) is grouped by the asked dimensions
and the currency, the sources are put together with UNION ALL, and an outer GROUP BY adds them
up. The answer is the raw rows' (tests/rollups checks both on random data): a row is in the next
report once it is written, and a status change once it is committed. Metric definitions:
network.reports.rules; rollups: network.rollups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select, union_all
from sqlalchemy.orm import Session

from network.auth import Principal, Role
from network.clock import as_utc, now_utc
from network.errors import Forbidden, NotFound, ValidationError
from network.offers import service as offers
from network.partners import service as partners
from network.reports import customers, rules, sources
from network.rollups import rules as rollup_rules
from network.tracking.models import Link

#: The period when none is given: the last 7 days.
DEFAULT_PERIOD = dt.timedelta(days=7)
#: The longest period one report may span.
MAX_PERIOD = dt.timedelta(days=366)
#: Rows per page: the default and the bound.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

#: The additive columns every source yields, in order (see rules.Sums).
_SUMS = (
    "clicks",
    "unique_clicks",
    "impressions",
    "conversions",
    "approved",
    "sale_minor",
    "revenue_minor",
    "payout_minor",
)
#: Money sums a role never gets, so they are not even selected for it.
_UNSELECTED: dict[Role, frozenset[str]] = {
    Role.ADMIN: frozenset(),
    Role.FINANCE: frozenset(),
    Role.BRAND: frozenset({"payout_minor"}),
    Role.PARTNER: frozenset({"sale_minor", "revenue_minor"}),
}


def period(
    start: dt.datetime | None = None, end: dt.datetime | None = None, *, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """Return the report period [start, end) in UTC, defaulted to the last 7 days; 400 naming the field."""
    for name, value in (("from", start), ("to", end)):
        if value is not None and value.tzinfo is None:
            raise ValidationError(f"{name} must be an ISO 8601 time with an offset", field=name)
    end = as_utc(end) if end is not None else (now or now_utc())
    start = as_utc(start) if start is not None else end - DEFAULT_PERIOD
    if start >= end:
        raise ValidationError("to must be after from", field="to")
    if end - start > MAX_PERIOD:
        raise ValidationError(f"from is too early: a period may span at most {MAX_PERIOD.days} days", field="from")
    return start, end


def _tenant(principal: Principal) -> tuple[int | None, int | None]:
    """Return the (brand, partner) every row must belong to; None means any."""
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return None, None
    if principal.role is Role.BRAND and principal.brand_id is not None:
        return principal.brand_id, None
    if principal.role is Role.PARTNER and principal.partner_id is not None:
        return None, principal.partner_id
    raise Forbidden("this key is not bound to a brand or partner")


def _check_filters(session: Session, principal: Principal, offer_id: int | None, partner_id: int | None) -> None:
    """404 for a filter naming another tenant's (or no) offer or partner; existence is not leaked."""
    if offer_id is not None:
        try:
            offers.get_offer(session, principal, offer_id)
        except NotFound:
            # A partner keeps its report of an offer it ran, also once the offer is paused or closed to it.
            ran = principal.role is Role.PARTNER and session.scalar(
                select(Link.id).where(Link.offer_id == offer_id, Link.partner_id == principal.partner_id).limit(1)
            )
            if not ran:
                raise
    if partner_id is not None:
        if principal.role is Role.PARTNER and partner_id != principal.partner_id:
            raise NotFound("partner not found")
        if principal.role in (Role.ADMIN, Role.FINANCE):
            partners.get_partner(session, principal, partner_id)
        # A brand filtering by a partner that never ran its offers simply gets no rows.


def _check_page(limit: int, offset: int) -> None:
    """400 naming the field for a page size out of bounds or a negative offset."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    if offset < 0:
        raise ValidationError("offset must not be negative", field="offset")


def _country(country: str | None) -> str | None:
    """Return a country filter as an upper-case ISO 3166 alpha-2 code; 400 for anything else."""
    if country is None:
        return None
    country = country.strip().upper()
    if len(country) != 2 or not country.isascii() or not country.isalpha():
        raise ValidationError("country must be an ISO 3166 alpha-2 code", field="country")
    return country


def _row(
    principal: Principal, record: Any, dims: Sequence[str], wanted: Sequence[str], *, with_impressions: bool
) -> dict[str, Any]:
    """Return one report row as the principal sees it: dimension values, currency and metrics."""
    currency = record["currency"]
    figures: dict[str, Any] = {name: int(record[name] or 0) for name in wanted}
    if not with_impressions:
        figures["impressions"] = None
    row: dict[str, Any] = {rules.DIMENSIONS[d]: rules.dimension_value(record[d]) for d in dims}
    row["currency"] = currency
    row.update(rules.metric_values(principal.role, currency, rules.Sums(**figures)))
    return row


def _sources(
    dims: Sequence[str], start: dt.datetime, end: dt.datetime, wanted: Sequence[str], where: sources.Scope,
    *, country: str | None, now: dt.datetime | None,
) -> list[Select[Any]]:  # fmt: skip
    """Return the SELECTs whose rows add up to the report: rollups of whole hours, raw rows of the rest
    (all raw when `now` is None)."""
    by_country = country is not None
    hours, edges = rollup_rules.split(start, end, now=now) if now is not None else (None, [(start, end)])
    parts = [sources.Times(edges=edges, marked=hours)]
    selects = [sources.clicks(dims, times, wanted, where) for times in parts]
    selects += [sources.conversions(dims, times, wanted, where, by_country=by_country) for times in parts]
    if hours is not None:
        selects += sources.rolled(dims, hours, wanted, where, by_country=by_country)
    # Impressions have no country or device: leave them out rather than put them in a null row.
    if not by_country and not any(d in rules.CLICK_ONLY_DIMENSIONS for d in dims):
        selects.append(sources.impressions(dims, start, end, wanted, where))
    return selects


def report(
    session: Session,
    principal: Principal,
    *,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    group_by: Sequence[str] = (),
    offer_id: int | None = None,
    partner_id: int | None = None,
    country: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    now: dt.datetime | None = None,
    raw: bool = False,
) -> list[dict[str, Any]]:
    """Return one page of report rows the principal may see, grouped by `group_by` and currency.

    `raw`: read every row raw, not whole hours from the rollups (the answer is the same; tests compare).
    """
    dims = rules.parse_group_by(group_by)
    start, end = period(start, end)
    _check_page(limit, offset)
    country = _country(country)
    brand_scope, partner_scope = _tenant(principal)
    _check_filters(session, principal, offer_id, partner_id)
    where = sources.Scope(brand_scope, partner_scope, offer_id, partner_id, country)

    wanted = [name for name in _SUMS if name not in _UNSELECTED[principal.role]]
    with_impressions = country is None and not any(d in rules.CLICK_ONLY_DIMENSIONS for d in dims)
    selects = _sources(dims, start, end, wanted, where, country=country, now=None if raw else now or now_utc())
    union = union_all(*selects).subquery("report_sources")
    keys = [union.c[d] for d in dims] + [union.c.currency]
    query = (
        select(*keys, *[func.sum(union.c[name]).label(name) for name in wanted])
        .group_by(*keys)
        .order_by(*[k.asc().nulls_last() for k in keys])
        .limit(limit)
        .offset(offset)
    )
    records = session.execute(query).mappings()
    rows = [_row(principal, record, dims, wanted, with_impressions=with_impressions) for record in records]
    if rules.customers_fit(dims, country):
        customers.add(session, principal, rows, dims, start, end, where)
    return rows


def columns(principal: Principal, group_by: Sequence[str]) -> list[str]:
    """Return the columns of the principal's report rows for `group_by` (the CSV header)."""
    dims = rules.parse_group_by(group_by)
    extra = rules.customer_metrics_for(principal.role) if rules.customers_fit(dims, None) else ()
    return [*rules.columns(principal.role, dims), *extra]
