"""The brand's home: spend, conversions, CR, EPC and ROAS for today, 7 and 30 days, the top partners and
offers of each period, and spend per day as a chart (with the same numbers in a table).

Every figure is a row of the reports service, called as the signed-in brand: a brand's report shows its
cost (`revenue`, what it pays the network), never partners' payout.
"""

from __future__ import annotations

import datetime as dt
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

#: Days in the spend chart.
CHART_DAYS = 30
#: Partners and offers listed per period.
TOP = 5


def periods(now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    return [
        ("Today", midnight(now.date())),
        ("Last 7 days", now - dt.timedelta(days=7)),
        ("Last 30 days", now - dt.timedelta(days=30)),
    ]


def _top(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
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
    names = {o.id: o.name for o in offers.list_offers(session, me, limit=500)}
    blocks = []
    for label, start in periods(now):
        blocks.append(
            {
                "label": label,
                "totals": reports.report(session, me, start=start, end=now),
                "partners": _top(reports.report(session, me, start=start, end=now, group_by=["partner"]), "partner_id"),
                "offers": _top(reports.report(session, me, start=start, end=now, group_by=["offer"]), "offer_id"),
            }
        )
    first = now.date() - dt.timedelta(days=CHART_DAYS - 1)
    daily = reports.report(session, me, start=midnight(first), end=now, group_by=["day"])
    return render_template(
        "brand/home.html",
        brand=brand,
        blocks=blocks,
        names=names,
        daily=[r for r in daily if r["clicks"] or r["conversions"]],
        chart=daily_series(daily, first, CHART_DAYS, "revenue"),
    )
