"""The brand's reports: every grouping and metric of the reports endpoint as a table with a chart, over a range
of UTC days, and the same rows as a CSV download. Rows come from the reports service as the API gives them
(a brand sees its cost, never partners' payout); a filter naming another brand's offer is 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, render_template, request
from wtforms import DateField, Form, IntegerField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional
from wtforms.validators import ValidationError as FormError

from network import web
from network.auth import Role
from network.clock import now_utc
from network.errors import ValidationError
from network.offers import service as offers
from network.portal.brand.common import MONEY_METRICS, blp, choices, midnight
from network.portal.brand.offer_forms import MultiCheckboxField
from network.portal.common import principal, role_required
from network.reports import rules
from network.reports import service as reports

#: Rows on the page (the CSV holds up to the service's most).
PAGE_ROWS = 500
DIMENSION_WORDS = {
    "day": "Day", "offer": "Offer", "partner": "Partner", "sub1": "Sub 1", "sub2": "Sub 2", "sub3": "Sub 3",
    "sub4": "Sub 4", "sub5": "Sub 5", "country": "Country", "device": "Device",
}  # fmt: skip
METRIC_WORDS = {
    "clicks": "Clicks", "unique_clicks": "Unique clicks", "impressions": "Impressions", "conversions": "Conversions",
    "approved": "Approved", "sale_amount": "Sales", "revenue": "Spend", "cr": "CR %", "epc": "EPC (spend per click)",
    "ctr": "CTR %", "roas": "ROAS",
}  # fmt: skip
#: The API's field names for the form's fields, as the reports service names them in its messages.
_FIELDS = {"from": "start", "to": "end", "group_by": "group_by", "country": "country"}


class ReportForm(Form):
    """The report's range, groupings and filters: a GET form, so no CSRF token (it changes nothing)."""

    start = DateField("From (UTC day)", [Optional()])
    end = DateField("To (UTC day, included)", [Optional()])
    group_by = MultiCheckboxField("Group by", choices=choices(DIMENSION_WORDS.items()))
    offer_id = SelectField("Offer", default="", validate_choice=False)
    partner_id = IntegerField("Partner id", [Optional(), NumberRange(min=1, max=2**31 - 1)])
    country = StringField("Country (two letters)", [Optional(), Length(max=2)])
    metric = SelectField(
        "Chart", default="revenue", choices=choices((m, METRIC_WORDS[m]) for m in rules.metrics_for(Role.BRAND))
    )

    def validate_offer_id(self, field: Any) -> None:
        if field.data and not str(field.data).isdigit():
            raise FormError("choose an offer from the list")


def _form() -> ReportForm:
    form = ReportForm(request.args)
    today = now_utc().date()
    if not request.args.get("start"):
        form.start.data = today - dt.timedelta(days=6)
    if not request.args.get("end"):
        form.end.data = today
    names = {o.id: o.name for o in offers.list_offers(web.session(), principal(), limit=500)}
    form.offer_id.choices = [
        SelectChoice("", "Any offer"),
        *[SelectChoice(str(i), f"{n} (#{i})") for i, n in names.items()],
    ]
    return form


def _rows(form: ReportForm, limit: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The report's rows and columns for a valid form (raises the service's ValidationError)."""
    group_by = list(form.group_by.data or [])
    start, end = form.start.data, form.end.data
    assert start is not None and end is not None
    rows = reports.report(
        web.session(),
        principal(),
        start=midnight(start),
        end=midnight(end + dt.timedelta(days=1)),
        group_by=group_by,
        offer_id=int(form.offer_id.data) if form.offer_id.data else None,
        partner_id=form.partner_id.data,
        country=form.country.data or None,
        limit=limit,
    )
    return rows, reports.columns(principal(), group_by)


def chart_data(rows: list[dict[str, Any]], columns: list[str], metric: str) -> dict[str, Any]:
    """One metric per row label (its dimension values) and currency."""
    dims = columns[: columns.index("currency")]
    labels: list[str] = []
    by_currency: dict[str, dict[str, Any]] = {}
    for row in rows:
        label = " · ".join(str(row[d]) if row[d] is not None else "(none)" for d in dims) or "Total"
        if label not in labels:
            labels.append(label)
        by_currency.setdefault(row["currency"], {})[label] = row[metric]
    unit = " ".join([METRIC_WORDS.get(metric, metric)])
    return {
        "days": labels,
        "series": [
            {
                "label": f"{unit} ({cur})" if metric in MONEY_METRICS else f"{unit}, {cur}",
                "values": [values.get(lb) for lb in labels],
            }
            for cur, values in sorted(by_currency.items())
        ],
    }


@blp.get("/reports")
@role_required(Role.BRAND)
def reports_page() -> Any:
    """The report for the chosen days, groupings and filters: a table, a chart of one metric, a CSV link."""
    form = _form()
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    status = 200
    if form.validate():
        try:
            rows, columns = _rows(form, PAGE_ROWS)
        except ValidationError as exc:
            field = form._fields.get(_FIELDS.get(exc.field or "", ""), form.start)
            field.errors = [*field.errors, exc.message]
            status = 400
    else:
        status = 400
    metric = form.metric.data if form.metric.data in rules.metrics_for(Role.BRAND) else "revenue"
    return render_template(
        "brand/reports.html",
        form=form,
        rows=rows,
        columns=columns,
        words={**METRIC_WORDS, **{rules.DIMENSIONS[d]: w for d, w in DIMENSION_WORDS.items()}, "currency": "Currency"},
        chart=chart_data(rows, columns, metric) if rows else None,
        full=len(rows) == PAGE_ROWS,
        csv_args={k: v for k, v in request.args.items(multi=True)} | {"group_by": form.group_by.data or []},
    ), status


@blp.get("/reports.csv")
@role_required(Role.BRAND)
def reports_csv() -> Any:
    """The same report as CSV (every row up to the service's most), as the API's `Accept: text/csv` gives it."""
    form = _form()
    if not form.validate():
        return Response("Check the report's fields on the reports page.\n", status=400, mimetype="text/plain")
    rows, columns = _rows(form, reports.MAX_LIMIT)
    response = Response(rules.csv_text(rows, columns), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="report.csv"'
    return response
