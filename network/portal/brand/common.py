"""What the brand console's views share: its blueprint, the signed-in brand, htmx fragments, periods and charts."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, render_template, request
from wtforms.fields.choices import SelectChoice

from network import money
from network.auth import Principal
from network.clock import UTC
from network.portal.partner_offers import render_block

blp = Blueprint("brand", __name__, url_prefix="/brand")


def brand_id(me: Principal) -> int:
    """The signed-in brand user's brand (every brand user has one)."""
    assert me.brand_id is not None
    return me.brand_id


def htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def page_or_block(template: str, block: str, status: int = 200, **context: Any) -> Any:
    """The whole page, or for an htmx request the named block of the same template."""
    if htmx():
        return render_block(template, block, **context), status
    return render_template(template, **context), status


def after_arg(name: str = "after") -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else None


def midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


def daily_series(rows: list[dict[str, Any]], first: dt.date, days: int, metric: str) -> dict[str, Any]:
    """One metric per day and currency from day-grouped report rows, every day present (zero when empty)."""
    labels = [(first + dt.timedelta(days=i)).isoformat() for i in range(days)]
    series: dict[str, dict[str, Any]] = {}
    for row in rows:
        series.setdefault(row["currency"], {})[str(row["day"])] = row[metric]
    return {
        "days": labels,
        "series": [
            {"label": f"{metric} ({cur})", "values": [_zero(by_day.get(d), metric, cur) for d in labels]}
            for cur, by_day in sorted(series.items())
        ],
    }


def _zero(value: Any, metric: str, currency: str) -> Any:
    if value is not None:
        return value
    return money.format_amount(0, currency) if metric in MONEY_METRICS else 0


#: Report metrics that are money in the row's currency.
MONEY_METRICS = frozenset({"sale_amount", "revenue", "payout", "profit", "epc"})


def choices(pairs: Any) -> list[SelectChoice]:
    """WTForms choices from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]
