"""The brand's home: spend, conversions, CR, EPC and ROAS for today, 7 and 30 days, the top partners and
offers of each period, and spend per day as a chart (with the same numbers in a table).

Every figure is a row of the reports service, called as the signed-in brand: a brand's report shows its
cost (`revenue`, what it pays the network), never partners' payout. Periods are whole UTC days (today, and
the 6 or 29 days before it), so the tops and the chart come from one report by day, partner and offer,
whose additive columns are added up here; the ratios are the service's, one report per period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from flask import render_template

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.clock import now_utc
from network.offers import service as offers
from network.portal.brand.common import blp, brand_id, daily_series, midnight
from network.portal.common import principal, role_required
from network.reports import service as reports

#: (label, days) of the periods, and days in the spend chart.
PERIODS = (("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30))
CHART_DAYS = 30
#: Partners and offers listed per period.
TOP = 5


def add_up(rows: Iterable[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """Rows summed per currency and `key` (clicks, conversions and spend: the additive columns)."""
    sums: dict[tuple[str, Any], dict[str, Any]] = {}
    for row in rows:
        found = sums.setdefault(
            (row["currency"], row[key]),
            {"currency": row["currency"], key: row[key], "clicks": 0, "conversions": 0, "revenue": Decimal(0)},
        )
        found["clicks"] += row["clicks"]
        found["conversions"] += row["conversions"]
        found["revenue"] += Decimal(row["revenue"])
    return [dict(s, revenue=str(s["revenue"])) for s in sums.values()]


def top(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """The rows with the most spend, then conversions (rows of one currency compare; others follow)."""
    ranked = sorted(rows, key=lambda r: (r["currency"], -Decimal(r["revenue"]), -r["conversions"], r[key] or 0))
    return [r for r in ranked if r["conversions"] or r["clicks"]][:TOP]


@blp.get("/")
@role_required(Role.BRAND)
def home() -> Any:
    """The brand's figures per period, its top partners and offers, and spend per day."""
    session, me = web.session(), principal()
    brand = accounts.get_brand(session, me, brand_id(me))
    now = now_utc()
    today = now.date()
    first = today - dt.timedelta(days=CHART_DAYS - 1)
    detail = reports.report(
        session, me, start=midnight(first), end=now, group_by=["day", "partner", "offer"], limit=reports.MAX_LIMIT
    )
    blocks = []
    for label, days in PERIODS:
        since = (today - dt.timedelta(days=days - 1)).isoformat()
        inside = [r for r in detail if r["day"] >= since]
        blocks.append(
            {
                "label": label,
                "totals": reports.report(session, me, start=midnight(today - dt.timedelta(days=days - 1)), end=now),
                "partners": top(add_up(inside, "partner_id"), "partner_id"),
                "offers": top(add_up(inside, "offer_id"), "offer_id"),
            }
        )
    daily = sorted(add_up(detail, "day"), key=lambda r: (r["day"], r["currency"]))
    return render_template(
        "brand/home.html",
        brand=brand,
        blocks=blocks,
        names={o.id: o.name for o in offers.list_offers(session, me, limit=500)},
        daily=[r for r in daily if r["clicks"] or r["conversions"]],
        chart=daily_series(daily, first, CHART_DAYS, "revenue"),
    )
