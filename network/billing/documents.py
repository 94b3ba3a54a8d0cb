"""An issued invoice as a document: a PDF (fpdf2) from the network's and the brand's details, and a CSV line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from network import money
from network.accounts.models import Brand
from network.billing import rules
from network.billing.models import BrandBilling, Invoice, InvoiceLine
from network.offers.models import Offer, OfferEvent

CSV_COLUMNS = (
    "number", "invoice_id", "brand_id", "brand", "currency", "amount", "status", "issued_at", "due_at", "paid_at",
    "paid_reference",
)  # fmt: skip
_KIND_WORDS = {"revenue": "conversions", "reversal": "credit: reversed", "cpc": "clicks", "cpm": "impressions"}


def _latin(text: str) -> str:
    """Return text the PDF's core font can draw (anything else becomes '?')."""
    return text.encode("latin-1", "replace").decode("latin-1")


def line_label(session: Session, line: InvoiceLine) -> str:
    """Return what an invoice line is for, in words ("Spring sale: sale (conversions)")."""
    offer = session.get(Offer, line.offer_id) if line.offer_id is not None else None
    event = session.get(OfferEvent, line.event_id) if line.event_id is not None else None
    what = _KIND_WORDS.get(line.kind, line.kind)
    name = offer.name if offer is not None else "adjustment"
    return f"{name}: {event.key} ({what})" if event is not None else f"{name} ({what})"


def render_pdf(session: Session, invoice: Invoice, lines: list[InvoiceLine], *, issuer: str) -> bytes:
    """Return the invoice as a PDF: issuer, brand, number and dates, one row per line, the total."""
    brand = session.get(Brand, invoice.brand_id)
    terms = session.get(BrandBilling, invoice.brand_id)
    fmt = lambda minor: money.format_amount(minor, invoice.currency)  # noqa: E731
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    label = rules.invoice_label(invoice.number) or f"DRAFT {invoice.id}"
    pdf.cell(0, 10, _latin(f"Invoice {label}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for text in issuer.split("|"):
        pdf.cell(0, 5, _latin(text.strip()), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.cell(0, 5, _latin(f"Bill to: {brand.name if brand else invoice.brand_id}"), new_x="LMARGIN", new_y="NEXT")
    for text in ((terms.billing_address if terms else None) or "").splitlines():
        pdf.cell(0, 5, _latin(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    dates = [("Issued", invoice.issued_at), ("Due", invoice.due_at)]
    for name, shown in [(n, v.date().isoformat() if v else "-") for n, v in dates] + [("Status", invoice.status)]:
        pdf.cell(0, 5, _latin(f"{name}: {shown}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 10)
    widths = (100, 25, 30, 35)
    for width, head in zip(widths, ("Item", "Count", "Unit", "Amount"), strict=True):
        pdf.cell(width, 6, head, border="B")
    pdf.ln()
    pdf.set_font("Helvetica", size=10)
    for line in lines:
        unit = fmt(line.unit_minor) if line.unit_minor is not None else "-"
        cells = (line_label(session, line)[:60], str(line.quantity), unit, fmt(line.amount_minor))
        for width, text in zip(widths, cells, strict=True):
            pdf.cell(width, 6, _latin(text))
        pdf.ln()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(sum(widths[:3]), 8, "Total")
    pdf.cell(widths[3], 8, _latin(f"{fmt(invoice.amount_minor)} {invoice.currency}"))
    return bytes(pdf.output())


def csv_lines(session: Session, invoices: Iterable[Invoice]) -> str:
    """Return a CSV of invoices, one line each, for finance's books."""
    names = dict(session.execute(select(Brand.id, Brand.name)).all())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for i in invoices:
        writer.writerow(
            [
                rules.invoice_label(i.number) or "", i.id, i.brand_id, names.get(i.brand_id, ""), i.currency,
                money.format_amount(i.amount_minor, i.currency), i.status,
                *(v.isoformat() if v else "" for v in (i.issued_at, i.due_at, i.paid_at)), i.paid_reference or "",
            ]
        )  # fmt: skip
    return out.getvalue()
