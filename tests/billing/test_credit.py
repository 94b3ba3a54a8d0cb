"""Credit limits and prepayments: finance sets a brand's limit and terms; the brand's credit status is
what it owes (unbilled + invoiced, unpaid) against it; a prepayment is a credit its next invoice draws down."""

from __future__ import annotations

import datetime as dt

import pytest

from network.billing import credit, invoicing, rules
from network.billing.models import Invoice, InvoiceLine
from network.clock import now_utc
from tests.billing.support import check_billing_invariants
from tests.billing.test_invoices import FINANCE
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import make_commission, make_shop


@pytest.mark.parametrize(
    ("exposure", "limit", "over"), [(0, None, False), (10**12, None, False), (1999, 2000, False), (2000, 2000, True),
                                    (2001, 2000, True), (-500, 0, False), (0, 0, True)],
)  # fmt: skip
def test_over_credit_rule(exposure, limit, over):
    assert rules.over_credit(exposure, limit) is over


def test_finance_sets_a_limit_and_the_brand_sees_its_credit_status(client, session):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    finance = Api(client, make_key(session, role="finance"))
    brand = Api(client, make_key(session, role="brand", brand=shop.brand))
    path = f"/api/v1/brands/{shop.brand.id}/billing"
    set_limit = finance.patch(path, json={"credit_limit": "20.00", "payment_terms_days": 14})
    assert set_limit.status_code == 200, set_limit.json
    assert set_limit.json["credit"] == {"currency": "USD", "limit": "20.00", "exposure": "10.00", "over_limit": False}
    assert set_limit.json["payment_terms_days"] == 14
    make_commission(session, offer=shop.offer, partner=partner, payout="10.00")
    assert brand.get(path).json["credit"] == {
        "currency": "USD",
        "limit": "20.00",
        "exposure": "20.00",
        "over_limit": True,
    }
    # Paying an invoice brings the brand back under its limit.
    (invoice_id,) = invoicing.build_invoices(session, run_key="t", period_end=now_utc() + dt.timedelta(days=1))
    assert finance.post(f"/api/v1/invoices/{invoice_id}/issue", json={}).status_code == 200
    assert brand.get(path).json["credit"]["over_limit"] is True
    finance.post(f"/api/v1/invoices/{invoice_id}/mark-paid", json={"reference": "wire 7"})
    assert brand.get(path).json["credit"] == {
        "currency": "USD",
        "limit": "20.00",
        "exposure": "0.00",
        "over_limit": False,
    }
    assert finance.patch(path, json={"credit_limit": None}).json["credit"]["limit"] is None
    refused = finance.patch(path, json={"credit_limit": "ten"})
    assert refused.status_code == 400 and "credit_limit" in str(refused.json)
    assert finance.patch(path, json={"over_limit": True}).status_code in (400, 422)
    assert brand.patch(path, json={"credit_limit": "1000000.00"}).status_code == 403
    assert brand.post(f"{path}/prepayments", json={"currency": "USD", "amount": "1.00"}).status_code == 403


def test_a_prepayment_is_a_credit_the_next_invoices_draw_down(client, session):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="10.00")
    finance = Api(client, make_key(session, role="finance"))
    paid = finance.post(
        f"/api/v1/brands/{shop.brand.id}/billing/prepayments",
        json={"currency": "USD", "amount": "15.00", "memo": "wire"},
    )
    assert paid.status_code == 201, paid.json
    end = now_utc() + dt.timedelta(days=1)
    assert invoicing.build_invoices(session, run_key="a", period_end=end) == []  # 10.00 - 15.00: nothing owed
    assert credit.credit_status(session, shop.brand.id)["exposure_minor"] == -500
    make_commission(session, offer=shop.offer, partner=partner, payout="10.00")
    (invoice_id,) = invoicing.build_invoices(session, run_key="b", period_end=end)
    assert session.get(Invoice, invoice_id).amount_minor == 500
    lines = session.query(InvoiceLine).filter_by(invoice_id=invoice_id).all()
    assert sorted((line.kind, line.amount_minor) for line in lines) == [("prepayment", -1500), ("revenue", 2000)]
    bad = finance.post(f"/api/v1/brands/{shop.brand.id}/billing/prepayments", json={"currency": "USD", "amount": "-1"})
    assert bad.status_code == 400 and "amount" in str(bad.json)
    with pytest.raises(Exception, match="may not"):
        credit.add_prepayment(session, FINANCE.__class__(FINANCE.role.__class__("brand"), brand_id=shop.brand.id),
                              shop.brand.id, currency="USD", amount="1.00")  # fmt: skip
    check_billing_invariants(session)
