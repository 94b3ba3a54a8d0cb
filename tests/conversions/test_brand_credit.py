"""Postbacks of a brand over its credit limit (billing): recorded, held pending with the flag over_credit
(nothing booked for anyone); once the brand pays, the credit check releases and approves them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from network.billing import credit, invoicing, service
from network.billing.models import BrandEntry
from network.clock import now_utc
from tests.billing.test_invoices import FINANCE
from tests.conversions.conftest import conversions, make_click, postback


def test_an_over_limit_brands_postbacks_are_held_until_it_pays(client, session, shop):
    credit.update_terms(session, FINANCE, shop.brand.id, credit_limit="3.00")
    first = make_click(session, shop.link, at=now_utc() - dt.timedelta(minutes=5))
    r = postback(client, click_id=first, event="lead", txn_id="L-1", token=shop.token)
    assert r.status_code == 200 and r.json["status"] == "approved"
    assert credit.refresh_holds(session) == {"held": 1, "released": 0, "approved": 0}
    session.flush()
    second = make_click(session, shop.link, at=now_utc() - dt.timedelta(minutes=4))
    r = postback(client, click_id=second, event="lead", txn_id="L-2", token=shop.token)
    assert (r.status_code, r.json["status"], r.json["duplicate"]) == (200, "pending", False)
    (held,) = conversions(session, txn_id="L-2")
    assert (held.status, held.flags, held.hold_until) == ("pending", ["over_credit"], None)
    # Nothing is owed for it yet: the brand's ledger holds the first lead only.
    assert session.scalars(select(BrandEntry.amount_minor)).all() == [300]
    (invoice_id,) = invoicing.build_invoices(session, run_key="t", period_end=now_utc() + dt.timedelta(days=1))
    service.issue(session, FINANCE, invoice_id, gateway="manual")
    service.mark_paid(session, FINANCE, invoice_id, reference="wire 3")
    assert credit.refresh_holds(session) == {"held": 0, "released": 1, "approved": 1}
    (released,) = conversions(session, txn_id="L-2")
    assert released.status == "approved"
    assert sorted(session.scalars(select(BrandEntry.amount_minor)).all()) == [300, 300]
