"""Invoices: built per brand and currency from unbilled entries, with lines; issued with gapless numbers;
voided, paid, written off; a reversal after invoicing is a credit on the next invoice."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from network import scheduler
from network.auth import Principal, Role
from network.billing import invoicing, rules, service
from network.billing.models import Invoice, InvoiceLine
from network.errors import Conflict, Forbidden, NotFound
from network.payouts.models import JobClaim
from tests.billing.support import check_billing_invariants
from tests.factories import cpa_event, make_brand, make_offer, make_partner
from tests.payouts.support import NOW, make_commission, make_shop, undo

FINANCE = Principal(Role.FINANCE, key_id=1)
LATER = NOW + dt.timedelta(days=1)


def build(session, *, end=LATER, key="test"):
    return invoicing.build_invoices(session, run_key=key, period_end=end, now=end)


def lines(session, invoice_id):
    return [
        (line.kind, line.quantity, line.unit_minor, line.amount_minor)
        for line in session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.id)
        )
    ]


def test_one_draft_per_brand_and_currency_with_a_line_per_offer_and_event(session):
    shop = make_shop(session)
    partner = make_partner(session)
    for _ in range(3):
        make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    euro = make_offer(session, brand=shop.brand, currency="EUR", events=[cpa_event(payout="1.00", revenue="2.00")])
    make_commission(session, offer=euro, partner=partner, payout=700)
    make_commission(session, offer=euro, partner=partner, payout=300)
    other = make_shop(session, name="Other")
    make_commission(session, offer=other.offer, partner=partner, payout="1.00")
    ids = build(session)
    invoices = [session.get(Invoice, i) for i in ids]
    assert [(i.brand_id, i.currency, i.amount_minor, i.entry_count, i.status) for i in invoices] == [
        (shop.brand.id, "EUR", 1000, 2, "draft"),
        (shop.brand.id, "USD", 1500, 3, "draft"),
        (other.brand.id, "USD", 100, 1, "draft"),
    ]
    assert lines(session, ids[1]) == [("revenue", 3, 500, 1500)]
    assert lines(session, ids[0]) == [("revenue", 2, None, 1000)]  # amounts differ: no one unit price
    assert build(session) == []  # nothing unbilled is left
    check_billing_invariants(session)


def test_entries_booked_after_the_period_wait_for_the_next_invoice(session):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00", at=NOW)
    make_commission(session, offer=shop.offer, partner=partner, payout="7.00", at=NOW + dt.timedelta(days=2))
    (first,) = build(session, end=LATER)
    assert session.get(Invoice, first).amount_minor == 500
    (second,) = build(session, end=LATER + dt.timedelta(days=5), key="next")
    assert session.get(Invoice, second).amount_minor == 700
    check_billing_invariants(session)


def test_issuing_numbers_invoices_in_order_without_gaps_and_sets_the_due_date(session):
    partner = make_partner(session)
    shops = [make_shop(session, name=f"Shop {n}") for n in range(3)]
    for shop in shops:
        make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    ids = build(session)
    service.terms_of(session, shops[0].brand.id).payment_terms_days = 14
    service.void(session, FINANCE, ids[1], reason="wrong")
    first = service.issue(session, FINANCE, ids[2], gateway="manual", now=NOW)
    second = service.issue(session, FINANCE, ids[0], gateway="manual", now=NOW)
    assert (first.number, second.number) == (1, 2)
    assert rules.invoice_label(second.number) == "INV-000002"
    assert second.due_at == NOW + dt.timedelta(days=14) and first.due_at == NOW + dt.timedelta(days=30)
    with pytest.raises(Conflict):
        service.issue(session, FINANCE, ids[0], gateway="manual", now=NOW)
    with pytest.raises(Conflict):
        service.issue(session, FINANCE, ids[1], gateway="manual", now=NOW)  # void
    check_billing_invariants(session)


def test_a_void_draft_releases_its_entries_to_the_next_build(session):
    shop = make_shop(session)
    make_commission(session, offer=shop.offer, partner=make_partner(session), payout="5.00")
    (draft,) = build(session)
    service.void(session, FINANCE, draft)
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW)
    assert (row["unbilled"], row["in_draft"]) == (500, 0)
    (again,) = build(session, key="again")
    assert again != draft and session.get(Invoice, again).amount_minor == 500
    check_billing_invariants(session)


def test_balances_move_from_unbilled_to_invoiced_to_paid_and_show_overdue(session):
    shop = make_shop(session)
    make_commission(session, offer=shop.offer, partner=make_partner(session), payout="5.00")
    (invoice_id,) = build(session)
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW)
    assert (row["unbilled"], row["in_draft"], row["invoiced"]) == (500, 500, 0)
    service.issue(session, FINANCE, invoice_id, gateway="manual", now=NOW)
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW + dt.timedelta(days=31))
    assert (row["unbilled"], row["invoiced"], row["overdue"], row["paid"]) == (0, 500, 500, 0)
    invoice = service.mark_paid(session, FINANCE, invoice_id, reference="bank 2026-04-01 #77")
    assert (invoice.status, invoice.paid_reference) == ("paid", "bank 2026-04-01 #77")
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW + dt.timedelta(days=31))
    assert (row["invoiced"], row["overdue"], row["paid"], row["balance"]) == (0, 0, 500, 500)
    with pytest.raises(Conflict):
        service.void(session, FINANCE, invoice_id)
    check_billing_invariants(session)


def test_a_reversal_after_invoicing_is_a_credit_on_the_next_invoice(session):
    shop = make_shop(session)
    partner = make_partner(session)
    refunded = make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    (first,) = build(session)
    service.issue(session, FINANCE, first, gateway="manual", now=NOW)
    undo(session, refunded, at=LATER)
    make_commission(session, offer=shop.offer, partner=partner, payout="7.00", at=LATER)
    (second,) = build(session, end=LATER + dt.timedelta(days=1), key="next")
    assert session.get(Invoice, first).amount_minor == 1000  # issued: unchanged
    assert session.get(Invoice, second).amount_minor == 200
    assert sorted(lines(session, second)) == [("revenue", 1, 700, 700), ("reversal", 1, -500, -500)]
    check_billing_invariants(session)


def test_credits_alone_make_no_invoice_and_wait_for_a_positive_one(session):
    shop = make_shop(session)
    partner = make_partner(session)
    refunded = make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    (first,) = build(session)
    service.issue(session, FINANCE, first, gateway="manual", now=NOW)
    undo(session, refunded, at=LATER)
    assert build(session, end=LATER + dt.timedelta(days=1), key="next") == []
    (row,) = service.balance_rows(session, shop.brand.id, now=LATER)
    assert (row["unbilled"], row["invoiced"]) == (-500, 500)
    check_billing_invariants(session)


def test_the_database_refuses_an_entry_on_two_live_invoices(session):
    shop = make_shop(session)
    make_commission(session, offer=shop.offer, partner=make_partner(session), payout="5.00")
    (invoice_id,) = build(session)
    entry_id = session.execute(text("SELECT entry_id FROM invoice_items")).scalar_one()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            text("INSERT INTO invoice_items (entry_id, invoice_id) VALUES (:e, :i)"),
            {"e": entry_id, "i": invoice_id + 1},
        )


def test_brands_see_their_own_invoices_and_partners_none(session):
    shop, other = make_shop(session), make_shop(session, name="Other")
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    make_commission(session, offer=other.offer, partner=partner, payout="5.00")
    mine, theirs = build(session)
    brand = Principal(Role.BRAND, key_id=2, brand_id=shop.brand.id)
    assert service.list_invoices(session, brand) == []  # drafts are finance's
    with pytest.raises(NotFound):
        service.get_invoice(session, brand, mine)
    service.issue(session, FINANCE, mine, gateway="manual")
    service.issue(session, FINANCE, theirs, gateway="manual")
    assert [i.id for i in service.list_invoices(session, brand)] == [mine]
    assert service.get_invoice(session, brand, mine).id == mine
    with pytest.raises(NotFound):
        service.get_invoice(session, brand, theirs)
    with pytest.raises(NotFound):
        service.balances(session, brand, other.brand.id)
    with pytest.raises(Forbidden):
        service.list_invoices(session, Principal(Role.PARTNER, key_id=3, partner_id=partner.id))
    with pytest.raises(Forbidden):
        service.issue(session, brand, mine, gateway="manual")


def test_the_scheduled_job_claims_its_month_once(committed_db, settings):
    with committed_db.session_scope() as session:
        shop = make_shop(session)
        make_commission(session, offer=shop.offer, partner=make_partner(session), payout="5.00", at=NOW)
    now = dt.datetime(2026, 4, 1, 0, 3, tzinfo=dt.UTC)
    first = scheduler.run_job(committed_db, settings, "build_invoices", now=now)
    second = scheduler.run_job(committed_db, settings, "build_invoices", now=now)
    assert (first["ran"], first["result"], second["ran"]) == (True, {"invoices": 1}, False)
    with committed_db.session_scope() as session:
        (invoice,) = session.scalars(select(Invoice))
        assert invoice.period_end == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
        assert invoice.run_key == "2026-04-01T00:00:00+00:00"
        assert session.scalars(select(JobClaim.period_key).where(JobClaim.job_id == "build_invoices")).all() == [
            invoice.run_key
        ]


def test_billing_terms_default_to_thirty_days(session):
    brand = make_brand(session, name="Terms")
    assert service.terms_of(session, brand.id).payment_terms_days == 30
