"""Reports: clicks, impressions and conversions aggregated in SQL, scoped to the caller.

One query per report: each source (clicks, impression counts, conversions) is grouped by the
asked dimensions and the currency, the three are put together with UNION ALL, and an outer
GROUP BY adds them up. Nothing is cached: a row is in the next report once it is written.
Metric definitions: network.reports.rules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Select,
    String,
    case,
    cast,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from network.auth import Principal, Role
from network.clock import as_utc, now_utc
from network.conversions.models import Conversion, ConversionStatus
from network.db import where_given
from network.errors import Forbidden, NotFound, ValidationError
from network.offers import service as offers
from network.offers.models import Offer
from network.partners import service as partners
from network.reports import rules
from network.tracking.models import Click, ImpressionCount, Link

#: The period when none is given: the last 7 days.
DEFAULT_PERIOD = dt.timedelta(days=7)
#: The longest period one report may span.
MAX_PERIOD = dt.timedelta(days=366)
#: Rows per page: the default and the bound.
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

#: Conversions that count in reports (rejected and reversed ones do not).
_COUNTED = (ConversionStatus.PENDING.value, ConversionStatus.APPROVED.value)
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
#: Constants inline in the SQL, not bound: PostgreSQL must see the same expression in SELECT and
#: GROUP BY, and a typed literal keeps the UNION's column types alike.
_ZERO = literal_column("0", BigInteger)
_ONE = literal_column("1", BigInteger)
_UTC = literal_column("'UTC'", String)


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


class _Source:
    """One grouped SELECT feeding the union: its dimension expressions and its sums."""

    def __init__(self, dims: Mapping[str, Any], currency: Any) -> None:
        self.dims = dims
        self.currency = currency

    def select(self, sums: Mapping[str, Any], wanted: Sequence[str]) -> Select[Any]:
        """Return the SELECT with every union column, zero for sums this source has none of."""
        labelled = [expr.label(name) for name, expr in self.dims.items()]
        values = [sums.get(name, _ZERO).label(name) for name in wanted]
        return select(*labelled, self.currency.label("currency"), *values).group_by(*self.dims.values(), self.currency)


class _utc_day(FunctionElement[dt.date]):  # noqa: N801 - a SQL function, named like one
    """The UTC day of a datetime column (or a date column as is), comparable across sources.

    Compiled per database by SQLAlchemy (`compiles`), so the queries below are the same on both.
    """

    inherit_cache = True


@compiles(_utc_day)
def _utc_day_sqlite(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds naive UTC text; date() of a date string is the string itself.
    return compiler.process(func.date(*element.clauses), **kw)


@compiles(_utc_day, "postgresql")
def _utc_day_postgresql(element: _utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    [column] = element.clauses
    if isinstance(column.type, Date):
        return compiler.process(column, **kw)
    return compiler.process(cast(func.timezone(_UTC, column), Date), **kw)


def _dimensions(
    dims: Sequence[str], day: Any, offer: Any, partner: Any, column: Callable[[str], Any]
) -> dict[str, Any]:
    """Return one source's expression of each asked dimension: its day, offer and partner, `column(dim)` as text
    for the others (sub ids, country, device)."""
    fixed = {"day": day, "offer": offer, "partner": partner}
    return {dim: fixed[dim] if dim in fixed else cast(column(dim), String) for dim in dims}


def _conversion_column(dim: str) -> Any:
    """Return a conversion's sub id, country or device: its click's."""
    if dim in rules.SUBS:
        # The click's sub ids (its own or its link's defaults); the link's when the click row
        # is not written yet (click rows are batched) or was never kept.
        return func.coalesce(getattr(Click, dim), getattr(Link, dim))
    return getattr(Click, dim)


def _click_source(
    dims: Sequence[str], start: dt.datetime, end: dt.datetime, wanted: Sequence[str], where: Any
) -> Select[Any]:
    # sub1..sub5, country, device: columns of the click row.
    exprs = _dimensions(
        dims, _utc_day(Click.created_at), Click.offer_id, Click.partner_id, lambda dim: getattr(Click, dim)
    )
    sums = {
        "clicks": func.count(),
        "unique_clicks": func.coalesce(func.sum(case((Click.is_unique.is_(True), _ONE), else_=_ZERO)), 0),
    }
    query = _Source(exprs, Offer.currency).select(sums, wanted)
    query = query.select_from(Click).join(Offer, Offer.id == Click.offer_id)
    query = query.where(Click.created_at >= start, Click.created_at < end)
    return where(query, Click.offer_id, Click.partner_id, Offer.brand_id, Click.country)


def _impression_source(
    dims: Sequence[str], start: dt.datetime, end: dt.datetime, wanted: Sequence[str], where: Any
) -> Select[Any]:
    # sub1..sub5: an impression carries its link's sub ids.
    exprs = _dimensions(
        dims, _utc_day(ImpressionCount.day), ImpressionCount.offer_id, ImpressionCount.partner_id,
        lambda dim: getattr(Link, dim),
    )  # fmt: skip
    sums = {"impressions": func.coalesce(func.sum(ImpressionCount.count), 0)}
    query = _Source(exprs, Offer.currency).select(sums, wanted)
    query = query.select_from(ImpressionCount).join(Offer, Offer.id == ImpressionCount.offer_id)
    if any(d in rules.SUBS for d in dims):
        query = query.join(Link, Link.id == ImpressionCount.link_id)
    # Counted per UTC day: every day the period touches.
    first_day = start.date()
    last_day = (end - dt.timedelta(microseconds=1)).date()
    query = query.where(ImpressionCount.day >= first_day, ImpressionCount.day <= last_day)
    return where(query, ImpressionCount.offer_id, ImpressionCount.partner_id, Offer.brand_id, None)


def _conversion_source(
    dims: Sequence[str],
    start: dt.datetime,
    end: dt.datetime,
    wanted: Sequence[str],
    where: Any,
    *,
    by_country: bool,
) -> Select[Any]:
    needs_click = by_country or any(d in rules.SUBS or d in rules.CLICK_ONLY_DIMENSIONS for d in dims)
    needs_link = any(d in rules.SUBS for d in dims)
    exprs = _dimensions(
        dims, _utc_day(Conversion.created_at), Conversion.offer_id, Conversion.partner_id, _conversion_column
    )
    approved = ConversionStatus.APPROVED.value
    sums = {
        "conversions": func.count(),
        "approved": func.coalesce(func.sum(case((Conversion.status == approved, _ONE), else_=_ZERO)), 0),
        "sale_minor": func.coalesce(func.sum(Conversion.amount_minor), 0),
        "revenue_minor": func.coalesce(func.sum(Conversion.revenue_minor), 0),
        "payout_minor": func.coalesce(func.sum(Conversion.payout_minor), 0),
    }
    query = _Source(exprs, Conversion.currency).select(sums, wanted).select_from(Conversion)
    if needs_click:
        query = query.outerjoin(Click, Click.id == Conversion.click_id)
    if needs_link:
        query = query.join(Link, Link.id == Conversion.link_id)
    query = query.where(Conversion.created_at >= start, Conversion.created_at < end, Conversion.status.in_(_COUNTED))
    return where(query, Conversion.offer_id, Conversion.partner_id, Conversion.brand_id, Click.country)


@dataclass(frozen=True)
class _Scope:
    """What every source's rows are narrowed to: the principal's tenant, then the asked filters."""

    brand_id: int | None
    partner_id: int | None
    offer_filter: int | None
    partner_filter: int | None
    country: str | None

    def __call__(self, query: Select[Any], offer_col: Any, partner_col: Any, brand_col: Any, country_col: Any) -> Any:
        """Return `query` narrowed to the scope (the tenant comes from the principal; filters only narrow it)."""
        return where_given(
            query,
            (brand_col, self.brand_id),
            (partner_col, self.partner_id),
            (offer_col, self.offer_filter),
            (partner_col, self.partner_filter),
            (country_col, self.country),
        )


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
) -> list[dict[str, Any]]:
    """Return one page of report rows the principal may see, grouped by `group_by` and currency."""
    dims = rules.parse_group_by(group_by)
    start, end = period(start, end)
    _check_page(limit, offset)
    country = _country(country)
    brand_scope, partner_scope = _tenant(principal)
    _check_filters(session, principal, offer_id, partner_id)
    where = _Scope(brand_scope, partner_scope, offer_id, partner_id, country)

    wanted = [name for name in _SUMS if name not in _UNSELECTED[principal.role]]
    # Impressions have no country or device: leave them out rather than put them in a null row.
    with_impressions = country is None and not any(d in rules.CLICK_ONLY_DIMENSIONS for d in dims)
    sources = [_click_source(dims, start, end, wanted, where)]
    if with_impressions:
        sources.append(_impression_source(dims, start, end, wanted, where))
    sources.append(_conversion_source(dims, start, end, wanted, where, by_country=country is not None))

    union = union_all(*sources).subquery("report_sources")
    keys = [union.c[d] for d in dims] + [union.c.currency]
    query = (
        select(*keys, *[func.sum(union.c[name]).label(name) for name in wanted])
        .group_by(*keys)
        .order_by(*[k.asc().nulls_last() for k in keys])
        .limit(limit)
        .offset(offset)
    )
    records = session.execute(query).mappings()
    return [_row(principal, record, dims, wanted, with_impressions=with_impressions) for record in records]


def columns(principal: Principal, group_by: Sequence[str]) -> list[str]:
    """Return the columns of the principal's report rows for `group_by` (the CSV header)."""
    return rules.columns(principal.role, rules.parse_group_by(group_by))
