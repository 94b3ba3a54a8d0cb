"""The SELECTs a report puts together: raw clicks, impression counts and conversions of given
times, and the rollups of whole hours.

Each source is grouped by the asked dimensions and the currency and yields every sum column (zero
for those it has none of), so the report can UNION ALL them and add them up (network/reports/service.py).
A period is cut in two (network/rollups/rules.split): whole hours without a mark are read from the
rollups (whole days whose hours have no mark from the daily cubes, the other hours from the
hourly rollups), and the rest from the raw rows: the period's edges, and the marked hours, joined from
rollup_marks in the same statement so that what is rolled up and what is read raw agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    union,
    union_all,
)

from network.conversions.models import Conversion, ConversionStatus
from network.db import UTCDateTime, hour_end, utc_day, where_given
from network.offers.models import Offer
from network.reports import rules
from network.rollups import rules as rollup_rules
from network.rollups.models import CUBES, EVERY_COLUMN, RollupDay, RollupDayMark, RollupDetail, RollupHour, RollupMark
from network.tracking.models import Click, ImpressionCount, Link

#: Conversions that count in reports (rejected and reversed ones do not).
COUNTED = (ConversionStatus.PENDING.value, ConversionStatus.APPROVED.value)
#: Constants inline in the SQL, not bound: PostgreSQL must see the same expression in SELECT and
#: GROUP BY, and a typed literal keeps the UNION's column types alike.
ZERO = literal_column("0", BigInteger)
ONE = literal_column("1", BigInteger)
#: A report dimension's column in the rollups, where it is not the dimension's own name.
_COLUMNS = {"offer": "offer_id", "partner": "partner_id"}


@dataclass(frozen=True)
class Scope:
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


@dataclass(frozen=True)
class Times:
    """The raw times a source reads: `edges` ([start, end) pairs), and the marked hours of [lo, hi)."""

    edges: Sequence[tuple[dt.datetime, dt.datetime]] = ()
    marked: tuple[dt.datetime, dt.datetime] | None = None

    def within(self, query: Select[Any], offer: Any, column: Any) -> Select[Any]:
        """Return `query` narrowed to rows whose `column` is in these times.

        The rows are joined to each offer's ranges (offers x ranges, kept apart by OFFSET 0 so the
        planner sees one small relation): each offer's rows of a range are then a range of the
        (offer_id, created_at) index, where a range of created_at alone has no index to walk.
        """
        ranges: list[Any] = [
            select(literal(a, UTCDateTime()).label("lo"), literal(b, UTCDateTime()).label("hi")) for a, b in self.edges
        ]
        if self.marked is not None:
            lo, hi = self.marked
            ranges.append(
                select(RollupMark.hour.label("lo"), hour_end(RollupMark.hour).label("hi"))
                .where(RollupMark.hour >= lo, RollupMark.hour < hi)
                .distinct()
            )
        times = union_all(*ranges).subquery("times") if len(ranges) > 1 else ranges[0].subquery("times")
        per_offer = (
            select(Offer.id.label("offer_id"), times.c.lo, times.c.hi)
            .select_from(Offer)
            .join(times, true())
            .offset(0)
            .subquery("offer_times")
        )
        return query.join(
            per_offer, and_(offer == per_offer.c.offer_id, column >= per_offer.c.lo, column < per_offer.c.hi)
        )


class _Source:
    """One grouped SELECT feeding the union: its dimension expressions and its sums."""

    def __init__(self, dims: Mapping[str, Any], currency: Any) -> None:
        self.dims = dims
        self.currency = currency

    def select(self, sums: Mapping[str, Any], wanted: Sequence[str]) -> Select[Any]:
        """Return the SELECT with every union column, zero for sums this source has none of."""
        labelled = [expr.label(name) for name, expr in self.dims.items()]
        values = [sums.get(name, ZERO).label(name) for name in wanted]
        return select(*labelled, self.currency.label("currency"), *values).group_by(*self.dims.values(), self.currency)


def _dimensions(
    dims: Sequence[str], day: Any, offer: Any, partner: Any, column: Callable[[str], Any]
) -> dict[str, Any]:
    """Return one source's expression of each asked dimension: its day, offer and partner, `column(dim)` as text
    for the others (sub ids, country, device)."""
    fixed = {"day": day, "offer": offer, "partner": partner}
    return {dim: fixed[dim] if dim in fixed else cast(column(dim), String) for dim in dims}


def conversion_column(dim: str) -> Any:
    """Return a conversion's sub id, country or device: its click's."""
    if dim in rules.SUBS:
        # The click's sub ids (its own or its link's defaults); the link's when the click row
        # is not written yet (click rows are batched) or was never kept.
        return func.coalesce(getattr(Click, dim), getattr(Link, dim))
    return getattr(Click, dim)


def clicks(dims: Sequence[str], times: Times, wanted: Sequence[str], where: Scope) -> Select[Any]:
    """Return raw clicks of `times`, grouped."""
    # sub1..sub5, country, device: columns of the click row.
    exprs = _dimensions(
        dims, utc_day(Click.created_at), Click.offer_id, Click.partner_id, lambda dim: getattr(Click, dim)
    )
    sums = {
        "clicks": func.count(),
        "unique_clicks": func.coalesce(func.sum(case((Click.is_unique.is_(True), ONE), else_=ZERO)), 0),
    }
    query = _Source(exprs, Offer.currency).select(sums, wanted)
    query = query.select_from(Click).join(Offer, Offer.id == Click.offer_id)
    query = times.within(query, Click.offer_id, Click.created_at)
    return where(query, Click.offer_id, Click.partner_id, Offer.brand_id, Click.country)


def impressions(
    dims: Sequence[str], start: dt.datetime, end: dt.datetime, wanted: Sequence[str], where: Scope
) -> Select[Any]:
    """Return impression counts of every UTC day [start, end) touches, grouped (they are counted per link and day)."""
    # sub1..sub5: an impression carries its link's sub ids.
    exprs = _dimensions(
        dims, utc_day(ImpressionCount.day), ImpressionCount.offer_id, ImpressionCount.partner_id,
        lambda dim: getattr(Link, dim),
    )  # fmt: skip
    sums = {"impressions": func.coalesce(func.sum(ImpressionCount.count), 0)}
    query = _Source(exprs, Offer.currency).select(sums, wanted)
    query = query.select_from(ImpressionCount).join(Offer, Offer.id == ImpressionCount.offer_id)
    if any(d in rules.SUBS for d in dims):
        query = query.join(Link, Link.id == ImpressionCount.link_id)
    first_day = start.date()
    last_day = (end - dt.timedelta(microseconds=1)).date()
    query = query.where(ImpressionCount.day >= first_day, ImpressionCount.day <= last_day)
    return where(query, ImpressionCount.offer_id, ImpressionCount.partner_id, Offer.brand_id, None)


def conversions(
    dims: Sequence[str], times: Times, wanted: Sequence[str], where: Scope, *, by_country: bool
) -> Select[Any]:
    """Return raw conversions created in `times` that count, grouped."""
    needs_click = by_country or any(d in rules.SUBS or d in rules.CLICK_ONLY_DIMENSIONS for d in dims)
    needs_link = any(d in rules.SUBS for d in dims)
    exprs = _dimensions(
        dims, utc_day(Conversion.created_at), Conversion.offer_id, Conversion.partner_id, conversion_column
    )
    approved = ConversionStatus.APPROVED.value
    sums = {
        "conversions": func.count(),
        "approved": func.coalesce(func.sum(case((Conversion.status == approved, ONE), else_=ZERO)), 0),
        "sale_minor": func.coalesce(func.sum(Conversion.amount_minor), 0),
        "revenue_minor": func.coalesce(func.sum(Conversion.revenue_minor), 0),
        "payout_minor": func.coalesce(func.sum(Conversion.payout_minor), 0),
    }
    query = _Source(exprs, Conversion.currency).select(sums, wanted).select_from(Conversion)
    if needs_click:
        query = query.outerjoin(Click, Click.id == Conversion.click_id)
    if needs_link:
        query = query.join(Link, Link.id == Conversion.link_id)
    query = times.within(query, Conversion.offer_id, Conversion.created_at).where(Conversion.status.in_(COUNTED))
    return where(query, Conversion.offer_id, Conversion.partner_id, Conversion.brand_id, Click.country)


def _marked_days(days: tuple[dt.date, dt.date]) -> Any:
    """Return the SELECT of the days of [first, end) that daily rollups may not answer: marked, or
    holding a marked hour."""
    first, end = days
    hours = select(utc_day(RollupMark.hour)).where(RollupMark.hour >= _start(first), RollupMark.hour < _start(end))
    return union(hours, select(RollupDayMark.day).where(RollupDayMark.day >= first, RollupDayMark.day < end))


def _start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def _sums(table: Any) -> dict[str, Any]:
    sums = {
        name: func.sum(getattr(table, name))
        for name in ("clicks", "unique_clicks", "approved", "sale_minor", "revenue_minor", "payout_minor")
    }
    sums["conversions"] = func.sum(table.pending + table.approved)
    return sums


def _counting(table: Any) -> Any:
    """A row of conversions that no longer count (rejected, reversed) is no report row."""
    return or_(table.clicks > 0, table.pending > 0, table.approved > 0)


def _cube(dims: Sequence[str], where: Scope, *, by_country: bool) -> int:
    """Return the first daily cube holding every column a report groups or filters by."""
    columns = {_COLUMNS.get(d, d) for d in dims if d != "day"} | ({"country"} if by_country else set())
    for column, value in (
        ("brand_id", where.brand_id),
        ("partner_id", where.partner_id),
        ("offer_id", where.offer_filter),
        ("partner_id", where.partner_filter),
    ):
        if value is not None:
            columns.add(column)
    return next(cube for cube, names in CUBES.items() if columns <= set(names))


def rolled(
    dims: Sequence[str],
    hours: tuple[dt.datetime, dt.datetime],
    wanted: Sequence[str],
    where: Scope,
    *,
    by_country: bool,
) -> list[Select[Any]]:
    """Return the rollups of the whole hours of [lo, hi) that have no mark, grouped: whole days from
    the daily cubes (`_daily`), the other hours from the hourly ones (`_hourly`)."""
    days = rollup_rules.whole_days(*hours)
    if days is None:
        return [_hourly(dims, hours, [hours], wanted, where, by_country=by_country)]
    lo, hi = hours
    first, end = _start(days[0]), _start(days[1])
    edges = [(a, b) for a, b in ((lo, first), (end, hi)) if a < b]
    selects = [_hourly(dims, hours, edges, wanted, where, by_country=by_country)] if edges else []
    # The hours of marked days (the daily cubes may be stale): joined to those days, so without
    # any (as nearly always: the job rolls them up within seconds) nothing of the days is read.
    selects.append(_hourly(dims, hours, [(first, end)], wanted, where, by_country=by_country, marked_days=days))
    selects.append(_daily(dims, days, wanted, where, by_country=by_country))
    return selects


def _hourly(
    dims: Sequence[str],
    hours: tuple[dt.datetime, dt.datetime],
    ranges: Sequence[tuple[dt.datetime, dt.datetime]],
    wanted: Sequence[str],
    where: Scope,
    *,
    by_country: bool,
    marked_days: tuple[dt.date, dt.date] | None = None,
) -> Select[Any]:
    """Return the hourly rollups of the unmarked hours in `ranges` (within `hours`), grouped: from the
    first cube holding every column asked (EVERY_COLUMN's are the details). With `marked_days`, only
    the hours of those of them that are marked."""
    cube = _cube(dims, where, by_country=by_country)
    table: Any = RollupDetail if cube == EVERY_COLUMN else RollupHour
    exprs = _dimensions(dims, utc_day(table.hour), table.offer_id, table.partner_id, lambda dim: getattr(table, dim))
    lo, hi = hours
    marked = select(RollupMark.hour).where(RollupMark.hour >= lo, RollupMark.hour < hi)
    query = _Source(exprs, table.currency).select(_sums(table), wanted).select_from(table)
    if marked_days is not None:
        stale = _marked_days(marked_days).subquery("marked_days")
        query = query.join(stale, utc_day(table.hour) == stale.c[0])
    in_ranges = or_(*[and_(table.hour >= a, table.hour < b) for a, b in ranges])
    query = query.where(in_ranges, table.hour.not_in(marked), _counting(table))
    if table is RollupHour:
        query = query.where(RollupHour.cube == cube)
    return where(query, table.offer_id, table.partner_id, table.brand_id, table.country if by_country else None)


def _daily(
    dims: Sequence[str], days: tuple[dt.date, dt.date], wanted: Sequence[str], where: Scope, *, by_country: bool
) -> Select[Any]:
    """Return the daily rollups of the days [first, end) where neither the day nor an hour of it is
    marked, grouped: from the first cube holding every column asked."""
    table = RollupDay
    exprs = _dimensions(dims, utc_day(table.day), table.offer_id, table.partner_id, lambda dim: getattr(table, dim))
    first, end = days
    query = _Source(exprs, table.currency).select(_sums(table), wanted).select_from(table)
    query = query.where(
        table.cube == _cube(dims, where, by_country=by_country),
        table.day >= first,
        table.day < end,
        table.day.not_in(_marked_days(days)),
        _counting(table),
    )
    return where(query, table.offer_id, table.partner_id, table.brand_id, table.country if by_country else None)
