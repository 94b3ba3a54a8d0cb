"""HTTP API for reports: JSON rows, or CSV with `Accept: text/csv`."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from network import money, web
from network.reports import margin, rules, service
from network.reports.schemas import MarginArgs, MarginSchema, ReportArgs, ReportSchema
from network.schemas import page_at

blp = web.Blueprint("reports", __name__, url_prefix="/api/v1/reports", description="Reports")
blp.before_request(web.authenticate)

_CSV = "text/csv"


def _wants_csv(args: dict[str, Any]) -> bool:
    if "format" in args:
        return bool(args["format"] == "csv")
    best = request.accept_mimetypes.best_match(["application/json", _CSV], default="application/json")
    return best == _CSV


@blp.route("")
class Reports(MethodView):
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, ReportSchema)
    @blp.doc(
        responses={
            200: {
                "content": {
                    _CSV: {
                        "schema": {"type": "string"},
                        "example": "day,currency,clicks\r\n2026-03-01,USD,120\r\n",
                    }
                }
            }
        }
    )
    def get(self, args: dict[str, Any]) -> Any:
        """Report clicks, impressions, conversions and money over a period, grouped and scoped to the caller.

        `group_by` takes day, offer, partner, sub1..sub5, country, device (comma-separated); rows are
        always split by currency. A brand sees its cost (revenue), never partners' payout; a partner
        its own rows and payout. `Accept: text/csv` (or `format=csv`) answers CSV with a header row.
        """
        session, principal = web.replica_session(), web.principal()  # a report may be a little behind
        csv_out = _wants_csv(args)
        group_by = args["group_by"].split(",")
        start, end = service.period(args.get("from_"), args.get("to"))
        limit = args.get("limit") or (service.MAX_LIMIT if csv_out else service.DEFAULT_LIMIT)
        filters: dict[str, Any] = {name: args.get(name) for name in ("offer_id", "partner_id", "country")}
        rows = service.report(
            session,
            principal,
            start=start,
            end=end,
            group_by=group_by,
            limit=limit,
            offset=args["offset"],
            **filters,
        )
        next_offset = args["offset"] + limit if len(rows) == limit else None
        if csv_out:
            text = rules.csv_text(rows, service.columns(principal, group_by))
            response = Response(text, mimetype=_CSV)
            response.headers["Content-Disposition"] = 'attachment; filename="report.csv"'
            if next_offset is not None:
                response.headers["X-Next-After"] = response.headers["X-Next-Offset"] = str(next_offset)
            return response
        totals = service.report(session, principal, start=start, end=end, group_by=[], **filters)
        return {
            "items": rows,
            "totals": totals,
            "from_": start.isoformat(),
            "to": end.isoformat(),
            "group_by": rules.parse_group_by(group_by),
            "limit": limit,
            "offset": args["offset"],
            "next_after": next_offset,
            "next_offset": next_offset,
        }


@blp.route("/margin")
class Margin(MethodView):
    @blp.arguments(MarginArgs, location="query")
    @blp.response(200, MarginSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Report revenue, payout and profit per currency, by day, brand, offer and partner, CPC and CPM included (finance, admin)."""
        start, end = service.period(args.get("from_"), args.get("to"))
        group_by = [d for d in args["group_by"].split(",") if d]
        rows = margin.margins(web.session(), web.principal(), start=start, end=end, group_by=group_by)
        first = args.get("after") or 0
        items = [
            {
                **{k: v for k, v in row.items() if not k.endswith("_minor")},
                **{
                    k.removesuffix("_minor"): money.format_amount(v, row["currency"])
                    for k, v in row.items()
                    if k.endswith("_minor")
                },
            }
            for row in rows[first : first + args["limit"]]
        ]
        return {**page_at(items, args["limit"], first), "lacking": margin.LACKING}
