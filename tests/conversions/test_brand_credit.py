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
    # The brand cannot approve it itself meanwhile: the partner would be paid before the brand pays.
    r = shop.brand_api.post(f"/api/v1/conversions/{held.id}/status", json={"status": "approved", "reason": "ok"})
    assert (r.status_code, r.json["code"]) == (409, "over_credit"), r.json
    (invoice_id,) = invoicing.build_invoices(session, run_key="t", period_end=now_utc() + dt.timedelta(days=1))
    service.issue(session, FINANCE, invoice_id, gateway="manual")
    service.mark_paid(session, FINANCE, invoice_id, reference="wire 3")
    assert credit.refresh_holds(session) == {"held": 0, "released": 1, "approved": 1}
    (released,) = conversions(session, txn_id="L-2")
    assert released.status == "approved"
    assert sorted(session.scalars(select(BrandEntry.amount_minor)).all()) == [300, 300]


def test_every_credit_check_lets_go_of_conversions_held_for_credit_as_their_offer_would_have(client, session, shop):
    # Flagged over_credit with a flag the offer does not hold (a repeat visitor), recorded on a hold a
    # process had cached after the run that lifted it: the next run approves it, whatever run lifted it.
    click = make_click(session, shop.link, at=now_utc() - dt.timedelta(minutes=5))
    r = postback(client, click_id=click, event="lead", txn_id="L-9", token=shop.token)
    assert r.json["status"] == "approved"
    (conversion,) = conversions(session, txn_id="L-9")
    conversion.status, conversion.flags, conversion.hold_until = "pending", ["repeat_visitor", "over_credit"], None
    session.flush()
    assert credit.refresh_holds(session) == {"held": 0, "released": 0, "approved": 1}
    assert conversion.status == "approved"

    # Inside its offer's hold period, it waits for the hold as any other conversion of the offer.
    shop.offer.hold_days = 3
    conversion.status, conversion.flags = "pending", ["over_credit"]
    session.flush()
    assert credit.refresh_holds(session)["approved"] == 0
    assert (conversion.status, conversion.hold_until) == ("pending", conversion.created_at + dt.timedelta(days=3))

    # A flag its offer holds keeps it for review.
    conversion.hold_until, conversion.flags = None, ["bot", "over_credit"]
    session.flush()
    assert credit.refresh_holds(session)["approved"] == 0
    assert (conversion.status, conversion.hold_until) == ("pending", None)
