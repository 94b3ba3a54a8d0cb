"""The brand's billing: what it owes per currency (unbilled, invoiced, overdue, paid), its issued invoices
and their PDFs or Stripe pages. Every figure is the billing service's, read as the signed-in brand."""

from __future__ import annotations

from typing import Any

from flask import Response, render_template

from network import money, web
from network.auth import Role
from network.billing import documents, rules, service
from network.portal.brand.common import blp, brand_id
from network.portal.common import principal, role_required


@blp.get("/billing")
@role_required(Role.BRAND)
def billing() -> Any:
    """The brand's balances per currency and its issued invoices."""
    session, me = web.session(), principal()
    mine = brand_id(me)
    balances = [
        {k: (money.format_amount(v, row["currency"]) if k != "currency" else v) for k, v in row.items()}
        for row in service.balances(session, me, mine)
    ]
    invoices = [
        {
            "invoice": i,
            "number": rules.invoice_label(i.number),
            "amount": money.format_amount(i.amount_minor, i.currency),
        }
        for i in service.list_invoices(session, me, limit=200)
    ]
    return render_template(
        "brand/billing.html", balances=balances, invoices=invoices,
        terms=service.terms_of(session, mine).payment_terms_days,
    )  # fmt: skip


@blp.get("/billing/invoices/<int:invoice_id>/pdf")
@role_required(Role.BRAND)
def invoice_pdf(invoice_id: int) -> Any:
    """One of the brand's issued invoices as a PDF (another brand's, or a draft: 404)."""
    session = web.session()
    invoice = service.get_invoice(session, principal(), invoice_id)
    body = documents.render_pdf(
        session, invoice, service.lines_of(session, invoice), issuer=web.settings().billing_issuer
    )
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f"attachment; filename=invoice-{invoice.number}.pdf"},
    )
