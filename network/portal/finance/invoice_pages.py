"""Invoices in the finance console: the list by status, an invoice with its lines, and finance's decisions
(issue, void, mark paid with a reference, write off), each asked for and then confirmed; the PDF.

Every read and decision is the billing domain's own (`billing.service`, `billing.jobs`); issuing through
Stripe Invoicing commits first and sends after, as the API does."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import Length, Optional

from network import web
from network.accounts.models import Brand
from network.billing import collect, documents, jobs, rules, service
from network.billing.models import Invoice
from network.clock import now_utc
from network.errors import DomainError
from network.portal.common import principal
from network.portal.finance.base import PAGE, amount, blp, digits, finance_required, last_id_if_full, next_link
from network.portal.finance.forms import TextRule

#: Each decision: its words on the button and in the confirmation.
ACTIONS = {
    "issue": "Issue",
    "void": "Void",
    "mark-paid": "Mark paid",
    "mark-uncollectible": "Write off as uncollectible",
}
STATUSES = ("draft", "open", "paid", "uncollectible", "void")


class InvoiceActionForm(FlaskForm):
    confirmed = HiddenField(default="")
    reference = StringField(
        "Payment reference", validators=[Optional(), Length(max=255), TextRule()],
        description="The bank transfer's or payment's reference (required to mark paid)",
    )  # fmt: skip
    reason = StringField("Reason", validators=[Optional(), Length(max=255), TextRule()])
    submit = SubmitField("Continue")


class BuildForm(FlaskForm):
    submit = SubmitField("Build invoices now from every unbilled entry")


def _row(session: Any, invoice: Invoice) -> dict[str, Any]:
    brand = session.get(Brand, invoice.brand_id)
    return {
        "invoice": invoice,
        "number": rules.invoice_label(invoice.number) or "-",
        "brand": brand.name if brand else f"#{invoice.brand_id}",
        "amount": amount(invoice.amount_minor, invoice.currency),
    }


@blp.get("/invoices")
@finance_required
def invoice_list() -> Any:
    """Invoices of one status (drafts first), newest built last."""
    status = request.args.get("status", "draft")
    if status not in STATUSES:
        status = "draft"
    session = web.session()
    found = service.list_invoices(session, principal(), status=status, limit=PAGE, after=digits("after"))
    return render_template(
        "finance/invoices.html",
        rows=[_row(session, i) for i in found],
        status=status,
        statuses=STATUSES,
        next_url=next_link(".invoice_list", last_id_if_full(found)),
        build_form=BuildForm(),
    )


@blp.post("/invoices/build")
@finance_required
def invoice_build() -> Any:
    """Build draft invoices now (the monthly job's work, up to this moment)."""
    if not BuildForm().validate_on_submit():
        abort(400)
    web.session().close()  # the build is its own transaction
    now = now_utc()
    ids = jobs.build_invoices(web.database(), run_key=f"manual:{now.isoformat()}", period_end=now)
    flash(f"Built {len(ids)} draft invoices." if ids else "Nothing to invoice: no brand has unbilled money.")
    return redirect(url_for(".invoice_list", status="draft"))


@blp.get("/invoices/<int:invoice_id>")
@finance_required
def invoice_page(invoice_id: int) -> Any:
    """One invoice: its brand, amount, dates, lines, and the decisions its status allows."""
    session = web.session()
    invoice = service.get_invoice(session, principal(), invoice_id)
    lines = [
        {"label": documents.line_label(session, line), "quantity": line.quantity,
         "unit": amount(line.unit_minor, invoice.currency) if line.unit_minor is not None else "-",
         "amount": amount(line.amount_minor, invoice.currency)}
        for line in service.lines_of(session, invoice)
    ]  # fmt: skip
    allowed = [a for a in ACTIONS if invoice.status in rules.ACTIONS[a.replace("-", "_")][0]]
    return render_template(
        "finance/invoice.html", r=_row(session, invoice), lines=lines, actions=allowed, words=ACTIONS,
        form=InvoiceActionForm(),
    )  # fmt: skip


@blp.get("/invoices/<int:invoice_id>/pdf")
@finance_required
def invoice_pdf(invoice_id: int) -> Any:
    """The invoice as a PDF."""
    session = web.session()
    invoice = service.get_invoice(session, principal(), invoice_id)
    body = documents.render_pdf(
        session, invoice, service.lines_of(session, invoice), issuer=web.settings().billing_issuer
    )
    return Response(
        body,
        mimetype="application/pdf",
        headers={"Content-Disposition": f"attachment; filename=invoice-{invoice.id}.pdf"},
    )


@blp.post("/invoices/<int:invoice_id>/<any(issue, void, 'mark-paid', 'mark-uncollectible'):action>")
@finance_required
def invoice_decide(invoice_id: int, action: str) -> Any:
    """Ask for a decision's confirmation; once confirmed, make it (a refusal is shown, nothing changed)."""
    form = InvoiceActionForm()
    if not form.validate_on_submit():
        abort(400)
    session, me = web.session(), principal()
    invoice = service.get_invoice(session, me, invoice_id)
    if action == "mark-paid" and not (form.reference.data or "").strip():
        flash("Marking an invoice paid needs the payment's reference.")
        return redirect(url_for(".invoice_page", invoice_id=invoice_id))
    if form.confirmed.data != "yes":
        form.confirmed.data = "yes"
        return render_template(
            "finance/invoice_confirm.html", r=_row(session, invoice), action=action, verb=ACTIONS[action], form=form
        )
    try:
        _decide(invoice_id, action, form)
    except DomainError as refusal:
        flash(f"Nothing was changed: {refusal}")
        return redirect(url_for(".invoice_page", invoice_id=invoice_id))
    flash(f"{ACTIONS[action]}: done.")
    return redirect(url_for(".invoice_page", invoice_id=invoice_id))


def _decide(invoice_id: int, action: str, form: InvoiceActionForm) -> None:
    session, me = web.session(), principal()
    if action == "issue":
        client = jobs.invoicing_client(web.settings())
        service.issue(session, me, invoice_id, gateway="manual" if client is None else "stripe")
        if client is not None:
            web.commit_before_calling_out()
            try:
                collect.send_one(web.database(), client, invoice_id)
            finally:
                client.close()
    elif action == "void":
        service.void(session, me, invoice_id, reason=form.reason.data or None)
    elif action == "mark-paid":
        service.mark_paid(session, me, invoice_id, reference=form.reference.data.strip())
    else:
        service.mark_uncollectible(session, me, invoice_id, reason=form.reason.data or None)
