"""The billing API: the brand reads its issued invoices, PDF and balances; finance builds, issues, voids and
marks paid; partners get 403 and another brand's invoice is 404."""

from __future__ import annotations

import pytest

from tests.billing.support import check_billing_invariants
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import make_commission, make_shop


@pytest.fixture
def world(session):
    shop, other = make_shop(session), make_shop(session, name="Other")
    partner = make_partner(session)
    for _ in range(2):
        make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    make_commission(session, offer=other.offer, partner=partner, payout="3.00")
    session.flush()
    return {
        "shop": shop, "other": other,
        "brand": make_key(session, role="brand", brand=shop.brand),
        "finance": make_key(session, role="finance"),
        "partner": make_key(session, role="partner", partner=partner),
    }  # fmt: skip


def test_finance_builds_issues_and_marks_paid_and_the_brand_reads_its_invoice(client, session, world):
    finance, brand = Api(client, world["finance"]), Api(client, world["brand"])
    run = finance.post("/api/v1/invoice-runs", json={})
    assert run.status_code == 201, run.json
    mine, theirs = (i for i in run.json["invoices"])
    assert (mine["status"], mine["amount"], mine["number"]) == ("draft", "10.00", None)
    assert brand.get("/api/v1/invoices").json["items"] == []  # a draft is finance's
    issued = finance.post(f"/api/v1/invoices/{mine['id']}/issue", json={})
    assert (issued.status_code, issued.json["status"], issued.json["number"]) == (200, "open", "INV-000001")
    assert issued.json["lines"] == [
        {"kind": "revenue", "offer_id": world["shop"].offer.id, "event_id": world["shop"].offer.events[0].id,
         "quantity": 2, "unit": "5.00", "amount": "10.00"}
    ]  # fmt: skip
    assert [i["id"] for i in brand.get("/api/v1/invoices").json["items"]] == [mine["id"]]
    pdf = brand.get(f"/api/v1/invoices/{mine['id']}/pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    billing = brand.get(f"/api/v1/brands/{world['shop'].brand.id}/billing").json
    assert billing["payment_terms_days"] == 30
    assert billing["items"] == [
        {"currency": "USD", "balance": "10.00", "unbilled": "0.00", "invoiced": "10.00", "paid": "0.00",
         "in_draft": "0.00", "overdue": "0.00"}
    ]  # fmt: skip
    missing = finance.post(f"/api/v1/invoices/{mine['id']}/mark-paid", json={})
    assert missing.status_code in (400, 422) and "reference" in str(missing.json)
    paid = finance.post(f"/api/v1/invoices/{mine['id']}/mark-paid", json={"reference": "wire 991"})
    assert (paid.json["status"], paid.json["paid_reference"]) == ("paid", "wire 991")
    assert finance.post(f"/api/v1/invoices/{mine['id']}/void", json={}).status_code == 409
    assert finance.post(f"/api/v1/invoices/{theirs['id']}/void", json={"reason": "later"}).json["status"] == "void"
    csv = finance.get("/api/v1/invoices/export")
    assert csv.status_code == 200 and "INV-000001" in csv.get_data(as_text=True)
    check_billing_invariants(session)


def test_partners_get_403_and_a_brand_404_for_another_brands_invoice(client, session, world):
    finance = Api(client, world["finance"])
    ids = [i["id"] for i in finance.post("/api/v1/invoice-runs", json={}).json["invoices"]]
    for invoice_id in ids:
        finance.post(f"/api/v1/invoices/{invoice_id}/issue", json={})
    theirs = ids[1]
    brand, partner = Api(client, world["brand"]), Api(client, world["partner"])
    for path in (
        f"/api/v1/invoices/{theirs}",
        f"/api/v1/invoices/{theirs}/pdf",
        f"/api/v1/brands/{world['other'].brand.id}/billing",
    ):
        assert brand.get(path).status_code == 404, path
    for path in ("/api/v1/invoices", f"/api/v1/invoices/{theirs}", f"/api/v1/brands/{world['shop'].brand.id}/billing",
                 "/api/v1/invoices/export"):  # fmt: skip
        assert partner.get(path).status_code == 403, path
    for action in ("issue", "void", "mark-uncollectible"):
        assert brand.post(f"/api/v1/invoices/{ids[0]}/{action}", json={}).status_code == 403
    assert partner.post("/api/v1/invoice-runs", json={}).status_code == 403
    assert brand.post("/api/v1/invoices/999999/mark-paid", json={"reference": "x"}).status_code == 403
    assert finance.post("/api/v1/invoices/999999/void", json={}).status_code == 404
    assert finance.post(f"/api/v1/invoices/{ids[0]}/void", json={"status": "paid"}).status_code in (400, 422)
