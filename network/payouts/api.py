"""HTTP API for balances, the ledger, payouts and payout runs (finance), Stripe onboarding and
Stripe's webhook."""

from __future__ import annotations

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Flask, Response, jsonify, request, send_file, url_for
from flask.views import MethodView
from flask_smorest import Api

from network import web
from network.errors import ValidationError
from network.payouts import jobs, jobstatus, ledger, service, settlement, stripe_webhooks
from network.payouts.gateway import InvalidWebhook
from network.payouts.schemas import (
    AdjustmentInSchema,
    BalanceSchema,
    DecisionSchema,
    JobListArgs,
    JobListSchema,
    JobStatusSchema,
    LedgerArgs,
    LedgerEntrySchema,
    LedgerListSchema,
    OnboardingSchema,
    PayoutListArgs,
    PayoutListSchema,
    PayoutRunInSchema,
    PayoutRunSchema,
    PayoutSchema,
    dump_balance,
    dump_entry,
    dump_payout,
)
from network.schemas import PageArgs, attrs, page

blp = web.Blueprint("payouts", __name__, url_prefix="/api/v1", description="Balances, ledger and payouts")
blp.before_request(web.authenticate)

_CSV = "text/csv"

#: Stripe calls this; it authenticates by signature, not by API key.
webhooks = FlaskBlueprint("stripe_webhooks", __name__)


@blp.route("/partners/<int:partner_id>/balance")
class Balance(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, BalanceSchema)
    def get(self, args: dict[str, Any], partner_id: int) -> Any:
        """Read a partner's pending, available, in-payout and paid money per currency (the partner, finance, admin)."""
        return dump_balance(partner_id, ledger.balances(web.session(), web.principal(), partner_id), **args)


@blp.route("/partners/<int:partner_id>/ledger")
class Ledger(MethodView):
    @blp.arguments(LedgerArgs, location="query")
    @blp.response(200, LedgerListSchema)
    def get(self, args: dict[str, Any], partner_id: int) -> Any:
        """Page through a partner's ledger entries, oldest first (the partner, finance, admin)."""
        entries = ledger.list_entries(web.session(), web.principal(), partner_id, **args)
        return page([dump_entry(e) for e in entries], args["limit"])


@blp.route("/partners/<int:partner_id>/adjustments")
class Adjustments(MethodView):
    @blp.arguments(AdjustmentInSchema)
    @blp.response(201, LedgerEntrySchema)
    def post(self, data: dict[str, Any], partner_id: int) -> Any:
        """Book a signed correction to a partner's balance, with its reason (finance, admin)."""
        return dump_entry(ledger.add_adjustment(web.session(), web.principal(), partner_id, **data))


@blp.route("/partners/<int:partner_id>/stripe/onboarding")
class StripeOnboarding(MethodView):
    @blp.response(200, OnboardingSchema)
    def post(self, partner_id: int) -> Any:
        """Create the partner's Stripe Express account if needed; return its onboarding link (the partner, admin)."""
        settings = web.settings()
        base = settings.public_base_url.rstrip("/")
        gateway = jobs.make_gateway(settings)
        try:
            start = service.start_onboarding(web.session(), web.principal(), partner_id)
            web.commit_before_calling_out()
            return service.stripe_onboarding(
                web.session(),
                web.principal(),
                start,
                gateway=gateway,
                refresh_url=f"{base}/stripe/onboarding/refresh",
                return_url=f"{base}/stripe/onboarding/return",
            )
        finally:
            jobs.close_gateway(gateway)


@blp.route("/payout-runs")
class PayoutRuns(MethodView):
    @blp.arguments(PayoutRunInSchema)
    @blp.response(201, PayoutRunSchema)
    def post(self, _data: dict[str, Any]) -> Any:
        """Run the payout job now: mature holds, build payouts, settle approved ones (finance, admin)."""
        principal = web.principal()
        # The run commits in phases of its own and calls the gateway between them, so the
        # request's transaction (on SQLite, its write lock) must not stay open meanwhile.
        web.session().close()
        summary = jobs.run_payouts(web.database(), web.settings(), principal=principal)
        session = web.session()
        return {
            "id": summary.run_id,
            "matured": summary.matured,
            "payouts": [dump_payout(p) for p in service.payouts_by_id(session, summary.built)],
            "settled": [
                dump_payout(p) for p in service.payouts_by_id(session, summary.paid + summary.failed + summary.unknown)
            ],
            "paid": len(summary.paid),
            "failed": len(summary.failed),
            "outcome_unknown": len(summary.unknown),
            # Where finance downloads the CSV (never the file's place on the server).
            "export_url": url_for(".PayoutRunExport", run_id=summary.run_id) if summary.export_path else None,
        }


@blp.route("/payout-runs/<int:run_id>/export")
class PayoutRunExport(MethodView):
    @blp.doc(
        responses={
            200: {
                "description": "The CSV finance pays from: one row per payout the run paid",
                "content": {_CSV: {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self, run_id: int) -> Response:
        """Download the CSV a manual payout run exported (finance, admin); 404 when the run has none."""
        path = settlement.export_file(web.session(), web.principal(), run_id)
        return send_file(path, mimetype=_CSV, as_attachment=True, download_name=f"payouts-run-{run_id}.csv")


@blp.route("/payouts")
class Payouts(MethodView):
    @blp.arguments(PayoutListArgs, location="query")
    @blp.response(200, PayoutListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List payouts, filtered by status, partner or run (finance, admin; a partner sees its own)."""
        payouts = service.list_payouts(web.session(), web.principal(), **args)
        return page([dump_payout(p) for p in payouts], args["limit"])


@blp.route("/payouts/<int:payout_id>")
class PayoutItem(MethodView):
    @blp.response(200, PayoutSchema)
    def get(self, payout_id: int) -> Any:
        """Read a payout (finance, admin; a partner its own)."""
        return dump_payout(service.get_payout(web.session(), web.principal(), payout_id))


def _decision_view(action: str, doc: str) -> type[MethodView]:
    class Decision(MethodView):
        @blp.arguments(DecisionSchema)
        @blp.response(200, PayoutSchema)
        def post(self, data: dict[str, Any], payout_id: int) -> Any:
            payout = service.decide(web.session(), web.principal(), payout_id, action, note=data.get("note"))
            return dump_payout(payout)

    Decision.post.__doc__ = doc
    Decision.__name__ = f"Payout{action.capitalize()}"
    return Decision


_DECISIONS = {
    "approve": "Approve a pending payout for settlement (finance, admin); 409 from any other status.",
    "hold": "Put a pending payout on hold (finance, admin).",
    "unhold": "Return a held payout to pending approval (finance, admin).",
    "cancel": "Cancel a pending or held payout; its entries return to the balance (finance, admin).",
}
for _action, _doc in _DECISIONS.items():
    blp.route(f"/payouts/<int:payout_id>/{_action}", endpoint=f"payout_{_action}")(_decision_view(_action, _doc))


@webhooks.post("/webhooks/stripe")
def stripe_webhook() -> Response:
    """Handle a Stripe event: verify its signature on the raw body, then apply it once."""
    gateway = jobs.make_gateway(web.settings())
    try:
        event = gateway.parse_webhook(
            payload=request.get_data(cache=False), signature=request.headers.get("Stripe-Signature")
        )
    except InvalidWebhook as exc:
        raise ValidationError(f"invalid Stripe webhook: {exc}", code="invalid_webhook") from None
    finally:
        jobs.close_gateway(gateway)
    outcome = stripe_webhooks.handle_stripe_event(web.session(), event)
    return jsonify({"received": True, "outcome": outcome})


def register(app: Flask, api: Api) -> None:
    """Register the API blueprint and Stripe's webhook endpoint."""
    api.register_blueprint(blp)
    app.register_blueprint(webhooks)


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.arguments(JobListArgs, location="query")
    @blp.response(200, JobListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List the scheduled jobs: schedule, last success (time, duration, outcome), last failure and why (admin, finance)."""
        rows = jobstatus.list_jobs(web.session(), web.principal(), **args)
        return page([attrs(row, JobStatusSchema) for row in rows], args["limit"])
