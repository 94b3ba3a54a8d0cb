"""Stripe Invoicing: a Customer per brand made once, the invoice's lines as items, finalized and sent
(send_invoice, the brand's terms), every call keyed; invoice.* webhooks verified and idempotent; a
sender killed at each phase, and an unknown outcome, end with one Stripe invoice, sent."""

from __future__ import annotations

import datetime as dt
import json
import os
import select as io_select
import signal
import subprocess
import sys

import pytest
from sqlalchemy import select

from network.app import create_app
from network.billing import collect, invoicing, jobs, service
from network.billing.models import BrandBilling, Invoice
from network.billing.stripe_invoicing import StripeInvoicing
from network.clock import now_utc
from network.config import ROOT
from network.errors import Conflict
from network.payouts.models import StripeEvent
from tests.billing.support import check_billing_invariants
from tests.billing.test_invoices import FINANCE
from tests.conftest import make_settings
from tests.factories import Api, cpa_event, make_key, make_offer, make_partner
from tests.payouts.support import API_KEY, WEBHOOK_SECRET, make_commission, make_shop
from tests.stripe_fake import invoicing as fake_invoicing


@pytest.fixture
def stripe_settings(database_url, fake_stripe):
    return make_settings(
        database_url, stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url, stripe_webhook_secret=WEBHOOK_SECRET
    )


@pytest.fixture
def app(db, stripe_settings):
    return create_app(stripe_settings, database=db)


def _drafts(session, n_currencies=1):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    make_commission(session, offer=shop.offer, partner=partner, payout="5.00")
    if n_currencies > 1:
        euro = make_offer(session, brand=shop.brand, currency="EUR", events=[cpa_event(payout="1.00", revenue="2.00")])
        make_commission(session, offer=euro, partner=partner, payout=300)
    ids = invoicing.build_invoices(session, run_key="t", period_end=now_utc() + dt.timedelta(days=1))
    session.flush()
    return shop, ids


def test_issuing_sends_one_invoice_per_currency_to_one_customer(client, session, fake_stripe):
    shop, ids = _drafts(session, n_currencies=2)
    service.terms_of(session, shop.brand.id).payment_terms_days = 14
    finance = Api(client, make_key(session, role="finance"))
    for invoice_id in ids:
        answer = finance.post(f"/api/v1/invoices/{invoice_id}/issue", json={})
        assert answer.status_code == 200, answer.json
        assert answer.json["gateway"] == "stripe" and answer.json["hosted_url"].startswith("https://")
    assert len(fake_stripe.customers) == 1
    (customer_id,) = fake_stripe.customers
    assert session.get(BrandBilling, shop.brand.id).stripe_customer_id == customer_id
    remote = sorted(fake_stripe.invoices.values(), key=lambda i: i["currency"])
    assert [(r["currency"], r["status"], r["sent"], r["total"]) for r in remote] == [
        ("eur", "open", True, 300), ("usd", "open", True, 1000)
    ]  # fmt: skip
    assert {(r["collection_method"], r["days_until_due"], r["customer"]) for r in remote} == {
        ("send_invoice", 14, customer_id)
    }
    session.expire_all()
    for invoice in session.scalars(select(Invoice)):
        assert (invoice.stripe_state, invoice.stripe_invoice_id in fake_stripe.invoices) == ("sent", True)
    posts = [r for r in fake_stripe.requests if r.method == "POST"]
    assert all(r.idempotency_key for r in posts)
    assert fake_stripe.violations == []


def _webhook(client, fake, type_, obj, secret=WEBHOOK_SECRET):
    body = json.dumps(fake.event(type_, obj)).encode()
    return client.post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": fake.sign_webhook(body, secret), "Content-Type": "application/json"},
    ), body


def test_webhooks_pay_void_and_write_off_once_and_refuse_a_bad_signature(
    client, session, fake_stripe, db, stripe_settings
):
    _drafts(session)
    other = make_shop(session, name="Other")
    make_commission(
        session, offer=other.offer, partner=make_partner(session, name="Q", email="q@example.com"), payout="4.00"
    )
    ids = invoicing.build_invoices(session, run_key="t2", period_end=now_utc() + dt.timedelta(days=1))
    everything = list(session.scalars(select(Invoice.id).order_by(Invoice.id)))
    for invoice_id in everything:
        service.issue(session, FINANCE, invoice_id, gateway="stripe")
    session.flush()
    assert jobs.send_invoices(db, stripe_settings) == {"sent": len(everything)}
    session.expire_all()
    first, second = (session.get(Invoice, i) for i in everything)
    bad, _ = _webhook(
        client, fake_stripe, "invoice.paid", fake_invoicing.settle(fake_stripe, first.stripe_invoice_id), "whsec_wrong"
    )
    assert bad.status_code == 400
    paid = fake_invoicing.settle(fake_stripe, first.stripe_invoice_id)
    answer, body = _webhook(client, fake_stripe, "invoice.paid", paid)
    assert answer.status_code == 200 and answer.json["outcome"] == f"invoice {first.id} paid"
    replay = client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": fake_stripe.sign_webhook(body, WEBHOOK_SECRET)}
    )
    assert replay.json["outcome"] == "duplicate"
    failed, _ = _webhook(client, fake_stripe, "invoice.payment_failed", fake_stripe.invoices[second.stripe_invoice_id])
    assert failed.json["outcome"] == f"invoice {second.id}: payment failed"
    uncollectible = fake_invoicing.settle(fake_stripe, second.stripe_invoice_id, "uncollectible")
    assert _webhook(client, fake_stripe, "invoice.marked_uncollectible", uncollectible)[0].status_code == 200
    voided = fake_invoicing.settle(fake_stripe, second.stripe_invoice_id, "void")
    assert _webhook(client, fake_stripe, "invoice.voided", voided)[0].json["outcome"] == f"invoice {second.id} void"
    session.expire_all()
    assert (session.get(Invoice, first.id).status, session.get(Invoice, first.id).paid_reference) == (
        "paid", first.stripe_invoice_id
    )  # fmt: skip
    assert session.get(Invoice, second.id).status == "void"
    (row,) = service.balance_rows(session, other.brand.id, now=now_utc())
    assert row["unbilled"] == 400  # the void invoice's entries are unbilled again
    assert len(session.scalars(select(StripeEvent)).all()) == 4
    assert ids
    check_billing_invariants(session)


@pytest.mark.parametrize("fault", ["timeout_after_apply", "500", "disconnect_after_apply"])
def test_an_unknown_outcome_is_retried_with_the_same_key_and_makes_one_invoice(
    session, db, fake_stripe, stripe_settings, fault
):
    _, (invoice_id,) = _drafts(session)
    service.issue(session, FINANCE, invoice_id, gateway="stripe")
    session.flush()
    fake_stripe.inject("/v1/invoices", fault, method="POST")
    client = StripeInvoicing(api_key=API_KEY, api_base=fake_stripe.base_url, timeout_seconds=1)
    try:
        assert collect.send_one(db, client, invoice_id) == "error"
        assert collect.send_one(db, client, invoice_id) == "sent"
    finally:
        client.close()
    assert len(fake_stripe.invoices) == 1 and len(fake_stripe.invoice_items) == 1
    (remote,) = fake_stripe.invoices.values()
    session.expire_all()
    assert session.get(Invoice, invoice_id).stripe_invoice_id == remote["id"] and remote["sent"]


SENDER = """
import sys, time
from network.db import Database
from network.billing import collect
from network.billing.stripe_invoicing import StripeInvoicing

url, api_base, api_key, kill_at, invoice_id = sys.argv[1:6]

def hook(phase, ident):
    if phase == kill_at:
        print("AT", phase, flush=True)
        time.sleep(60)

collect.set_phase_hook(hook)
client = StripeInvoicing(api_key=api_key, api_base=api_base, timeout_seconds=5)
print("DONE", collect.send_one(Database(url), client, int(invoice_id)), flush=True)
"""


@pytest.mark.parametrize("kill_at", ["customer_created", "invoice_created", "items_added", "finalized", "sent"])
def test_a_sender_killed_at_each_phase_is_finished_by_the_job_with_one_invoice(
    committed_db, database_url, fake_stripe, stripe_settings, frozen_clock, kill_at
):
    with committed_db.session_scope() as session:
        shop, (invoice_id,) = _drafts(session, n_currencies=1)
        euro = make_offer(
            session, brand=shop.brand, name="Second", events=[cpa_event(key="lead", payout="1.00", revenue="3.00")]
        )
        make_commission(session, offer=euro, partner=make_partner(session, name="R", email="r@example.com"), payout=300)
    with committed_db.session_scope() as session:
        invoicing.build_invoices(session, run_key="more", period_end=now_utc() + dt.timedelta(days=1))
        invoice_id = session.scalars(select(Invoice.id).order_by(Invoice.id.desc())).first()
        service.issue(session, FINANCE, invoice_id, gateway="stripe")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", SENDER, database_url, fake_stripe.base_url, API_KEY, kill_at, str(invoice_id)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = io_select.select([proc.stdout], [], [], 30)
            assert ready, "the sender never reached its kill point"
            assert proc.stdout.readline().strip() == f"AT {kill_at}"
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=10) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    # The dead sender's lease holds for a while; then the job takes the invoice over.
    assert jobs.send_invoices(committed_db, stripe_settings) == {}
    frozen_clock(now_utc() + dt.timedelta(minutes=6))
    assert jobs.send_invoices(committed_db, stripe_settings) == {"sent": 1}
    assert jobs.send_invoices(committed_db, stripe_settings) == {}
    assert len(fake_stripe.customers) == 1 and len(fake_stripe.invoices) == 1
    (remote,) = fake_stripe.invoices.values()
    with committed_db.session_scope() as session:
        invoice = session.get(Invoice, invoice_id)
        assert (invoice.stripe_state, invoice.stripe_invoice_id, invoice.hosted_url) == (
            "sent", remote["id"], remote["hosted_invoice_url"]
        )  # fmt: skip
        assert remote["total"] == invoice.amount_minor and remote["sent"] and remote["status"] == "open"
        assert len(fake_stripe.invoice_items) == len(service.lines_of(session, invoice))
        check_billing_invariants(session)


def test_finance_cannot_void_or_mark_paid_an_invoice_stripe_collects(session, db, fake_stripe, stripe_settings):
    _, (invoice_id,) = _drafts(session)
    service.issue(session, FINANCE, invoice_id, gateway="stripe")
    session.flush()
    for decide in (
        lambda: service.void(session, FINANCE, invoice_id),
        lambda: service.mark_paid(session, FINANCE, invoice_id, reference="x"),
        lambda: service.mark_uncollectible(session, FINANCE, invoice_id),
    ):
        with pytest.raises(Conflict, match="Stripe"):
            decide()
    assert session.get(Invoice, invoice_id).status == "open"
