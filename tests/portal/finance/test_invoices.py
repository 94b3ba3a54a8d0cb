"""Invoices in the finance console: build, review, issue (confirmed), mark paid with a reference, void; the
brand's billing page shows its issued invoice, balances and PDF; nobody else's, and partners nothing."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from network.billing.models import Invoice
from tests.billing.support import check_billing_invariants
from tests.payouts.support import NOW
from tests.portal.conftest import csrf_token, sign_in
from tests.portal.finance.conftest import page, rows, text


def _later(frozen_clock):
    # The world's conversions were booked at NOW; a build bills what was booked before its time.
    frozen_clock(NOW + dt.timedelta(hours=1))


def _post(client, path, form_page, **data):
    return client.post(path, data={**data, "csrf_token": csrf_token(page(client, form_page))})


def _decide(client, invoice_id, action, **data):
    at = f"/finance/invoices/{invoice_id}"
    asked = _post(client, f"{at}/{action}", at, **data)
    assert asked.status_code == 200 and "?" in text(asked)  # the confirmation
    confirmed = client.post(f"{at}/{action}", data={**data, "confirmed": "yes", "csrf_token": csrf_token(text(asked))})
    assert confirmed.status_code == 302
    return page(client, at)


def test_finance_builds_issues_and_marks_an_invoice_paid_after_confirming(finance, money, session, frozen_clock):
    _later(frozen_clock)
    built = _post(finance, "/finance/invoices/build", "/finance/invoices")
    assert built.status_code == 302
    listing = page(finance, built.headers["Location"])
    # The world's drafts were built with it: this build finds nothing more to bill.
    assert "Nothing to invoice" in listing
    drafts = [r for r in rows(listing) if len(r) == 7]
    assert [r[2:5] for r in drafts] == [["Acme Shop", "49.50 USD", "3"], ["Euro Shop", "60.00 EUR", "1"]]
    usd = session.scalars(select(Invoice).where(Invoice.currency == "USD")).one()
    shown = _decide(finance, usd.id, "issue")
    assert "Issue: done." in shown and "INV-000001" in shown
    refused = _post(finance, f"/finance/invoices/{usd.id}/mark-paid", f"/finance/invoices/{usd.id}")
    assert refused.status_code == 302 and "needs the payment" in page(finance, refused.headers["Location"])
    shown = _decide(finance, usd.id, "mark-paid", reference="wire 42")
    assert "wire 42" in shown and "paid" in shown
    eur = session.scalars(select(Invoice).where(Invoice.currency == "EUR")).one()
    assert "Void: done." in _decide(finance, eur.id, "void", reason="wrong month")
    session.expire_all()
    assert (session.get(Invoice, usd.id).status, session.get(Invoice, eur.id).status) == ("paid", "void")
    pdf = finance.get(f"/finance/invoices/{usd.id}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    check_billing_invariants(session)


def test_the_brand_sees_its_issued_invoices_and_others_nothing(client, finance, money, session, frozen_clock):
    _later(frozen_clock)
    _post(finance, "/finance/invoices/build", "/finance/invoices")
    usd, eur = (session.scalars(select(Invoice).where(Invoice.currency == c)).one() for c in ("USD", "EUR"))
    _decide(finance, usd.id, "issue")
    _decide(finance, eur.id, "issue")
    finance.post("/account/sign-out", data={"csrf_token": csrf_token(page(finance, "/finance/invoices"))})
    assert sign_in(client, "brand@example.com").status_code == 302
    billing = page(client, "/brand/billing")
    assert rows(billing)[1][:3] == ["INV-000001", "49.50 USD", "open"]
    assert rows(billing)[0] == ["USD", "0.00", "49.50", "0.00", "0.00"]
    assert client.get(f"/brand/billing/invoices/{usd.id}/pdf").data.startswith(b"%PDF")
    assert client.get(f"/brand/billing/invoices/{eur.id}/pdf").status_code == 404  # the Euro Shop's
    assert client.get("/finance/invoices").status_code == 404
    client.post("/account/sign-out", data={"csrf_token": csrf_token(billing)})
    assert sign_in(client, "ops@dealblog.example").status_code == 302
    for path in ("/finance/invoices", f"/finance/invoices/{usd.id}", f"/finance/invoices/{usd.id}/pdf"):
        assert client.get(path).status_code == 404, path
    assert client.get("/brand/billing").status_code in (403, 404)


def test_the_margin_page_shows_revenue_payout_and_profit_per_brand(finance, money, frozen_clock):
    _later(frozen_clock)
    shown = page(finance, "/finance/margin", days="30", by="brand")
    # The world's shops pay as much as their partners earn (revenue = payout): no profit.
    assert sorted(rows(shown)) == [
        ["Acme Shop", "49.50 USD", "49.50 USD", "0.00 USD"],
        ["Euro Shop", "60.00 EUR", "60.00 EUR", "0.00 EUR"],
    ]
    assert "country" in shown
