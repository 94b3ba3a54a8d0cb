"""Margins in the finance console: revenue, payout and profit per brand (or offer, partner, day) over a
period, CPC and CPM included: the reports domain's `margin.margins`, as GET /api/v1/reports/margin."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template, request

from network import web
from network.accounts.models import Brand
from network.clock import now_utc
from network.portal.common import principal
from network.portal.finance.base import amount, blp, finance_required
from network.reports import margin

#: The periods the page offers, in days back from now.
PERIODS = {"7": 7, "30": 30, "90": 90}
GROUPS = ("brand", "offer", "partner", "day")


@blp.get("/margin")
@finance_required
def margin_page() -> Any:
    """Revenue, payout and profit over the last 7, 30 or 90 days, grouped by one dimension."""
    days = PERIODS.get(request.args.get("days", "30"), 30)
    group = request.args.get("by", "brand")
    if group not in GROUPS:
        group = "brand"
    end = now_utc()
    session = web.session()
    rows = margin.margins(session, principal(), start=end - dt.timedelta(days=days), end=end, group_by=[group])
    names = dict(session.execute(Brand.__table__.select().with_only_columns(Brand.id, Brand.name)).all())
    shown = [
        {
            "key": names.get(row["brand"], f"#{row['brand']}") if group == "brand" else row[group],
            "revenue": amount(row["revenue_minor"], row["currency"]),
            "payout": amount(row["payout_minor"], row["currency"]),
            "profit": amount(row["profit_minor"], row["currency"]),
        }
        for row in rows
    ]
    return render_template(
        "finance/margin.html",
        rows=shown,
        days=days,
        group=group,
        groups=GROUPS,
        periods=PERIODS,
        lacking=margin.LACKING,
    )
