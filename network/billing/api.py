"""HTTP API of billing: invoices (the brand its own issued ones; finance all, and issues, voids, marks
paid), their PDF and CSV, a brand's balances, and building invoices now. Partners get 403."""

from __future__ import annotations

from typing import Any

from flask import Response, url_for
from flask.views import MethodView

from network import web
from network.auth import Role, require
from network.billing import collect, credit, documents, jobs, service
from network.billing.schemas import (
    BillingTermsSchema,
    BrandBillingSchema,
    InvoiceListArgs,
    InvoiceListSchema,
    InvoiceRunInSchema,
    InvoiceRunSchema,
    InvoiceSchema,
    PaidSchema,
    PrepaymentInSchema,
    PrepaymentSchema,
    VoidSchema,
    dump_balances,
    dump_invoice,
)
from network.clock import now_utc
from network.schemas import PageArgs, page

blp = web.Blueprint("billing", __name__, url_prefix="/api/v1", description="Brand billing: invoices and balances")
blp.before_request(web.authenticate)


def _pdf_url(invoice_id: int) -> str:
    return url_for("billing.InvoicePdf", invoice_id=invoice_id)


def _full(invoice: Any) -> dict[str, Any]:
    return dump_invoice(invoice, service.lines_of(web.session(), invoice), pdf_url=_pdf_url(invoice.id))


@blp.route("/invoices")
class Invoices(MethodView):
    @blp.arguments(InvoiceListArgs, location="query")
    @blp.response(200, InvoiceListSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List invoices: a brand its issued ones; finance and admin every one (filter by brand, status, currency)."""
        invoices = service.list_invoices(web.session(), web.principal(), **args)
        return page([dump_invoice(i, pdf_url=_pdf_url(i.id)) for i in invoices], args["limit"])


@blp.route("/invoices/<int:invoice_id>")
class InvoiceOne(MethodView):
    @blp.response(200, InvoiceSchema)
    def get(self, invoice_id: int) -> Any:
        """Read an invoice with its lines (its brand once issued; finance, admin)."""
        return _full(service.get_invoice(web.session(), web.principal(), invoice_id))


@blp.route("/invoices/<int:invoice_id>/pdf")
class InvoicePdf(MethodView):
    @blp.doc(responses={"200": {"description": "The invoice as a PDF", "content": {"application/pdf": {}}}})
    def get(self, invoice_id: int) -> Response:
        """Download the invoice as a PDF (its brand once issued; finance, admin)."""
        session = web.session()
        invoice = service.get_invoice(session, web.principal(), invoice_id)
        body = documents.render_pdf(
            session, invoice, service.lines_of(session, invoice), issuer=web.settings().billing_issuer
        )
        name = f"invoice-{invoice.number or f'draft-{invoice.id}'}.pdf"
        return Response(
            body, mimetype="application/pdf", headers={"Content-Disposition": f"attachment; filename={name}"}
        )


@blp.route("/invoices/export")
class InvoiceExport(MethodView):
    @blp.arguments(InvoiceListArgs, location="query")
    @blp.doc(responses={"200": {"description": "One CSV line per invoice", "content": {"text/csv": {}}}})
    def get(self, args: dict[str, Any]) -> Response:
        """Download invoices as CSV, one line each (finance, admin)."""
        principal = web.principal()
        require(principal, Role.FINANCE, Role.ADMIN)
        invoices = service.list_invoices(web.session(), principal, **args)
        return Response(documents.csv_lines(web.session(), invoices), mimetype="text/csv")


def _issue(invoice_id: int) -> dict[str, Any]:
    """Issue (committed first), then send it to Stripe Invoicing when configured; the job finishes what this does not."""
    settings = web.settings()
    client = jobs.invoicing_client(settings)
    service.issue(web.session(), web.principal(), invoice_id, gateway="manual" if client is None else "stripe")
    if client is not None:
        web.commit_before_calling_out()
        try:
            collect.send_one(web.database(), client, invoice_id)
        finally:
            client.close()
    session = web.session()
    return _full(service.get_invoice(session, web.principal(), invoice_id))


def _action_view(action: str, schema: Any, doc: str) -> type[MethodView]:
    class Action(MethodView):
        @blp.arguments(schema)
        @blp.response(200, InvoiceSchema)
        def post(self, data: dict[str, Any], invoice_id: int) -> Any:
            session, principal = web.session(), web.principal()
            if action == "issue":
                return _issue(invoice_id)
            elif action == "void":
                invoice = service.void(session, principal, invoice_id, reason=data.get("reason"))
            elif action == "mark-paid":
                invoice = service.mark_paid(session, principal, invoice_id, reference=data["reference"])
            else:
                invoice = service.mark_uncollectible(session, principal, invoice_id, reason=data.get("reason"))
            return _full(invoice)

    Action.post.__doc__ = doc
    Action.__name__ = f"Invoice_{action.replace('-', '_')}"
    return Action


for _action, _schema, _doc in (
    ("issue", InvoiceRunInSchema, "Issue a draft: it takes the next invoice number and its due date (finance, admin)."),
    ("void", VoidSchema, "Void a draft or an unpaid invoice; its entries are unbilled again (finance, admin)."),
    ("mark-paid", PaidSchema, "Record that an issued invoice was paid, with the payment's reference (finance, admin)."),
    ("mark-uncollectible", VoidSchema, "Give up collecting an issued invoice (finance, admin)."),
):
    blp.route(f"/invoices/<int:invoice_id>/{_action}", endpoint=f"invoice_{_action.replace('-', '_')}")(
        _action_view(_action, _schema, _doc)
    )


@blp.route("/invoice-runs")
class InvoiceRuns(MethodView):
    @blp.arguments(InvoiceRunInSchema)
    @blp.response(201, InvoiceRunSchema)
    def post(self, _data: dict[str, Any]) -> Any:
        """Build draft invoices now from every unbilled entry (finance, admin)."""
        principal = web.principal()
        require(principal, Role.FINANCE, Role.ADMIN)
        web.commit_before_calling_out()
        now = now_utc()
        ids = jobs.build_invoices(web.database(), run_key=f"manual:{now.isoformat()}", period_end=now)
        session = web.session()
        return {
            "invoices": [dump_invoice(service.get_invoice(session, principal, i), pdf_url=_pdf_url(i)) for i in ids]
        }


@blp.route("/brands/<int:brand_id>/billing")
class BrandBilling(MethodView):
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, BrandBillingSchema)
    def get(self, args: dict[str, Any], brand_id: int) -> Any:
        """Read a brand's payment terms and balances per currency: unbilled, invoiced, paid, overdue (the brand, finance, admin)."""
        session = web.session()
        rows = service.balances(session, web.principal(), brand_id)
        terms = service.terms_of(session, brand_id).payment_terms_days
        return dump_balances(brand_id, terms, rows, credit.credit_status(session, brand_id), **args)

    @blp.arguments(BillingTermsSchema)
    @blp.response(200, BrandBillingSchema)
    def patch(self, data: dict[str, Any], brand_id: int) -> Any:
        """Change a brand's payment terms, billing details or credit limit (finance, admin)."""
        session = web.session()
        terms = credit.update_terms(session, web.principal(), brand_id, **data)
        rows = service.balances(session, web.principal(), brand_id)
        return dump_balances(brand_id, terms.payment_terms_days, rows, credit.credit_status(session, brand_id))


@blp.route("/brands/<int:brand_id>/billing/prepayments")
class Prepayments(MethodView):
    @blp.arguments(PrepaymentInSchema)
    @blp.response(201, PrepaymentSchema)
    def post(self, data: dict[str, Any], brand_id: int) -> Any:
        """Book money a brand paid ahead (a manual credit); its next invoices draw it down (finance, admin)."""
        entry_id = credit.add_prepayment(web.session(), web.principal(), brand_id, **data)
        return {"entry_id": entry_id, "brand_id": brand_id}
