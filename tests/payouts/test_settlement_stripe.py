"""Settlement through the real stripe SDK against FakeStripe: RELIABILITY.md 21, 23 and the 24 h
key window, Stripe webhooks (26), account updates, transfer reversals, and onboarding."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time

import pytest
import requests
from sqlalchemy import select, update
from sqlalchemy.engine import make_url

from network.app import create_app
from network.auth import SYSTEM
from network.clock import now_utc
from network.partners.models import Partner
from network.payouts import jobs, ledger, service
from network.payouts.models import AuditLog, LedgerEntry, Payout, StripeEvent
from tests.conftest import make_settings
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import (
    API_KEY,
    WEBHOOK_SECRET,
    check_invariants,
    make_commission,
    make_shop,
    stripe_gw_fixture,  # noqa: F401
)

TRANSFERS = "/v1/transfers"


@pytest.fixture
def app(database_url, db, fake_stripe):
    """The app configured for Stripe, pointed at FakeStripe."""
    settings = make_settings(
        database_url, stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url, stripe_webhook_secret=WEBHOOK_SECRET
    )
    return create_app(settings, database=db)


@pytest.fixture
def stripe_settings(database_url, fake_stripe):
    return make_settings(
        database_url, stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url, stripe_webhook_secret=WEBHOOK_SECRET
    )


def connected_partner(session, fake, *, name="Partner", enabled=True):
    partner = make_partner(session, name=name)
    partner.stripe_account_id = fake.create_account(enabled=enabled)
    partner.stripe_payouts_enabled = enabled
    session.flush()
    return partner


def approved_payouts(db, session, settings, shop, partners, amount="60.00"):
    """Give each partner a commission, build their payouts and approve them all; return their ids in partner order."""
    for partner in partners:
        make_commission(session, offer=shop.offer, partner=partner, payout=amount)
    built = {session.get(Payout, i).partner_id: i for i in jobs.build(db, settings).built}
    ids = [built[p.id] for p in partners]
    for payout_id in ids:
        service.decide(session, SYSTEM, payout_id, "approve")
    session.flush()
    return ids


def payout(session, payout_id):
    session.expire_all()
    return session.get(Payout, payout_id)


def transfer_posts(fake):
    return [r for r in fake.requests if r.method == "POST" and r.path == TRANSFERS]


def test_success_then_timeout_is_retried_with_the_same_key_into_one_transfer(
    db, session, stripe_settings, fake_stripe, stripe_gw, frozen_clock
):
    """RELIABILITY.md 21."""
    frozen_clock(now_utc())
    shop = make_shop(session)
    (payout_id,) = approved_payouts(db, session, stripe_settings, shop, [connected_partner(session, fake_stripe)])
    fake_stripe.inject(TRANSFERS, "timeout_after_apply", times=1, method="POST")

    first = jobs.settle_approved(db, stripe_settings, gateway=stripe_gw)
    assert (first.paid, first.failed, first.unknown) == ([], [], [payout_id])
    assert payout(session, payout_id).status == "processing"  # unknown is never failed
    assert len(fake_stripe.transfers) == 1  # Stripe did make it

    assert jobs.recover_payouts(db, stripe_settings, gateway=stripe_gw).paid == []  # lease still held
    frozen_clock(now_utc() + dt.timedelta(minutes=6))
    assert jobs.recover_payouts(db, stripe_settings, gateway=stripe_gw).paid == [payout_id]

    (transfer,) = fake_stripe.transfers
    done = payout(session, payout_id)
    assert (done.status, done.reference, done.attempts) == ("paid", transfer["id"], 2)
    posts = transfer_posts(fake_stripe)
    assert [(r.idempotency_key, r.replayed) for r in posts] == [
        (f"payout-{payout_id}", False),
        (f"payout-{payout_id}", True),
    ]
    audit = session.execute(
        select(AuditLog.action, AuditLog.details)
        .where(AuditLog.object_type == "payout", AuditLog.object_id == str(payout_id))
        .order_by(AuditLog.id)
    ).all()
    assert [a.action for a in audit] == ["payout.approved", "payout.sent", "payout.unknown", "payout.paid"]
    assert audit[-1].details == {"reference": transfer["id"]}
    check_invariants(session, fake_stripe)


def test_batch_of_ten_with_three_failures(db, session, stripe_settings, fake_stripe, stripe_gw, frozen_clock):
    """RELIABILITY.md 23: 7 paid, 2 failed with Stripe's reasons, 1 unknown kept under its key."""
    frozen_clock(now_utc())
    shop = make_shop(session)
    partners = [connected_partner(session, fake_stripe, name=f"P{i}", enabled=i != 2) for i in range(10)]
    ids = approved_payouts(db, session, stripe_settings, shop, partners)
    # In payout order: a persistent 500, insufficient balance, then P2's account is not enabled.
    fake_stripe.inject(TRANSFERS, "500", times=1, method="POST")
    fake_stripe.inject(TRANSFERS, "insufficient_balance", times=1, method="POST")

    result = jobs.settle_approved(db, stripe_settings, gateway=stripe_gw)
    assert (sorted(result.paid), sorted(result.failed), result.unknown) == (ids[3:], ids[1:3], ids[:1])
    for _ in range(2):  # the 500 persists through recovery
        frozen_clock(now_utc() + dt.timedelta(minutes=6))
        fake_stripe.inject(TRANSFERS, "500", times=1, method="POST")
        assert jobs.recover_payouts(db, stripe_settings, gateway=stripe_gw).unknown == ids[:1]

    unknown, no_funds, not_enabled = (payout(session, i) for i in ids[:3])
    assert (unknown.status, unknown.idempotency_key, unknown.attempts) == ("processing", f"payout-{ids[0]}", 3)
    assert "500" in unknown.last_error
    assert (no_funds.status, not_enabled.status) == ("failed", "failed")
    assert "balance_insufficient" in no_funds.failure_reason
    assert "insufficient_capabilities_for_transfer" in not_enabled.failure_reason
    keys = [r.idempotency_key for r in transfer_posts(fake_stripe) if r.params["metadata"]["payout_id"] == str(ids[0])]
    assert keys == [f"payout-{ids[0]}"] * 3  # no new key for the unknown one
    assert len(fake_stripe.transfers) == 7
    # Failed payouts' entries are available again; the unknown one's stay attached.
    lines = {p.id: ledger.balance_rows(session, p.id)[0] for p in partners[:3]}
    assert [(lines[p.id]["available"], lines[p.id]["in_payout"]) for p in partners[:3]] == [
        (0, 6000),
        (6000, 0),
        (6000, 0),
    ]
    check_invariants(session, fake_stripe)

    frozen_clock(now_utc() + dt.timedelta(minutes=6))  # Stripe recovers: the same key pays it once
    assert jobs.recover_payouts(db, stripe_settings, gateway=stripe_gw).paid == ids[:1]
    assert len(fake_stripe.transfers) == 8
    check_invariants(session, fake_stripe)


@pytest.mark.parametrize("fault", ["timeout_after_apply", "timeout_before_apply"])
def test_after_the_key_window_recovery_looks_up_the_transfer_group_first(
    db, session, stripe_settings, fake_stripe, stripe_gw, frozen_clock, fault
):
    start = now_utc()
    frozen_clock(start)
    shop = make_shop(session)
    (payout_id,) = approved_payouts(db, session, stripe_settings, shop, [connected_partner(session, fake_stripe)])
    fake_stripe.inject(TRANSFERS, fault, times=1, method="POST")
    assert jobs.settle_approved(db, stripe_settings, gateway=stripe_gw).unknown == [payout_id]
    # A day later (the scheduler was down): Stripe has forgotten the key.
    frozen_clock(start + dt.timedelta(hours=25))
    fake_stripe.advance(hours=25)

    assert jobs.recover_payouts(db, stripe_settings, gateway=stripe_gw).paid == [payout_id]
    (transfer,) = fake_stripe.transfers
    assert transfer["transfer_group"] == f"payout-{payout_id}"
    assert payout(session, payout_id).reference == transfer["id"]
    lookups = [r for r in fake_stripe.requests if r.method == "GET" and r.path == TRANSFERS]
    assert [r.params["transfer_group"] for r in lookups] == [f"payout-{payout_id}"]
    # Found: no new POST. Not found: one POST, still with the payout's key.
    assert [r.idempotency_key for r in transfer_posts(fake_stripe)] == [f"payout-{payout_id}"] * (
        1 if fault == "timeout_after_apply" else 2
    )
    check_invariants(session, fake_stripe)


def test_partner_without_a_stripe_account_fails_without_a_call(db, session, stripe_settings, fake_stripe, stripe_gw):
    shop = make_shop(session)
    (payout_id,) = approved_payouts(db, session, stripe_settings, shop, [make_partner(session)])
    assert jobs.settle_approved(db, stripe_settings, gateway=stripe_gw).failed == [payout_id]
    assert payout(session, payout_id).failure_reason == "the partner has no connected Stripe account"
    assert fake_stripe.requests == []
    check_invariants(session, fake_stripe)


def post_webhook(client, body: bytes, signature: str):
    return client.post(
        "/webhooks/stripe", data=body, headers={"Stripe-Signature": signature, "Content-Type": "application/json"}
    )


def test_webhook_signature_age_and_replay(client, session, fake_stripe):
    """RELIABILITY.md 26: bad signature 400, old timestamp 400, replay a no-op."""
    partner = connected_partner(session, fake_stripe, enabled=False)
    fake_stripe.enable_account(partner.stripe_account_id)
    event = fake_stripe.events[-1]
    assert event["type"] == "account.updated"
    body = json.dumps(event).encode()

    assert post_webhook(client, body, fake_stripe.sign_webhook(body, "whsec_wrong_secret")).status_code == 400
    old = fake_stripe.sign_webhook(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)
    assert post_webhook(client, body, old).status_code == 400
    assert post_webhook(client, body + b" ", fake_stripe.sign_webhook(body, WEBHOOK_SECRET)).status_code == 400
    assert client.post("/webhooks/stripe", data=body).status_code == 400
    session.expire_all()
    assert session.get(Partner, partner.id).stripe_payouts_enabled is False
    assert session.scalars(select(StripeEvent)).all() == []

    signature = fake_stripe.sign_webhook(body, WEBHOOK_SECRET)
    r = post_webhook(client, body, signature)
    assert r.status_code == 200, r.json
    session.expire_all()
    assert session.get(Partner, partner.id).stripe_payouts_enabled is True
    # Replayed after finance turned it off by hand: the replay must change nothing.
    session.get(Partner, partner.id).stripe_payouts_enabled = False
    session.flush()
    r = post_webhook(client, body, signature)
    assert (r.status_code, r.json["outcome"]) == (200, "duplicate")
    session.expire_all()
    assert session.get(Partner, partner.id).stripe_payouts_enabled is False
    assert [e.event_id for e in session.scalars(select(StripeEvent))] == [event["id"]]


def test_transfer_reversed_webhook_reverses_the_payout_and_returns_the_money(
    client, db, session, stripe_settings, fake_stripe, stripe_gw
):
    shop = make_shop(session)
    partner = connected_partner(session, fake_stripe)
    (payout_id,) = approved_payouts(db, session, stripe_settings, shop, [partner])
    assert jobs.settle_approved(db, stripe_settings, gateway=stripe_gw).paid == [payout_id]
    reference = payout(session, payout_id).reference
    r = requests.post(
        f"{fake_stripe.base_url}/v1/transfers/{reference}/reversals",
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    event = fake_stripe.events[-1]
    assert event["type"] == "transfer.reversed"
    body = json.dumps(event).encode()
    for _ in range(2):  # Stripe may deliver twice
        r = post_webhook(client, body, fake_stripe.sign_webhook(body, WEBHOOK_SECRET))
        assert r.status_code == 200, r.json
    done = payout(session, payout_id)
    assert (done.status, done.reversed_at is not None) == ("reversed", True)
    kinds = session.execute(select(LedgerEntry.kind, LedgerEntry.amount_minor).order_by(LedgerEntry.id)).all()
    assert kinds == [("commission", 6000), ("payout", -6000), ("payout_reversal", 6000)]
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["available"], line["paid"], line["balance"]) == (6000, 0, 6000)
    check_invariants(session, fake_stripe)


def test_stripe_onboarding_creates_one_account_and_returns_a_link(client, session, fake_stripe):
    partner, other = make_partner(session, name="P", email="p@example.com"), make_partner(session, name="Q")
    me = Api(client, make_key(session, role="partner", partner=partner))
    r = me.post(f"/api/v1/partners/{partner.id}/stripe/onboarding")
    assert r.status_code == 200, r.json
    account_id = r.json["account_id"]
    assert r.json["url"].startswith(f"https://connect.stripe.com/setup/e/{account_id}/")
    assert r.json["payouts_enabled"] is False
    assert me.post(f"/api/v1/partners/{partner.id}/stripe/onboarding").json["account_id"] == account_id
    assert list(fake_stripe.accounts) == [account_id]
    assert fake_stripe.accounts[account_id]["email"] == "p@example.com"
    session.expire_all()
    assert session.get(Partner, partner.id).stripe_account_id == account_id
    assert me.post(f"/api/v1/partners/{other.id}/stripe/onboarding").status_code == 404
    finance = Api(client, make_key(session, role="finance"))
    assert finance.post(f"/api/v1/partners/{partner.id}/stripe/onboarding").status_code == 403
    admin = Api(client, make_key(session, role="admin"))
    assert admin.post(f"/api/v1/partners/{other.id}/stripe/onboarding").status_code == 200


def test_onboarding_holds_no_transaction_while_stripe_answers(committed_db, database_url, fake_stripe, dialect):
    # On SQLite an open transaction holds the database's write lock; while Stripe takes its time
    # (up to the gateway's timeout) every other writer would wait. Each of Stripe's requests here
    # checks, as it arrives, that another connection can take the lock at once.
    if dialect != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    settings = make_settings(database_url, stripe_api_key=API_KEY, stripe_api_base=fake_stripe.base_url)
    app = create_app(settings, database=committed_db)
    with committed_db.session_scope() as session:
        partner = make_partner(session, name="P", email="p@example.com")
        key = make_key(session, role="partner", partner=partner)
        partner_id = partner.id
    free: list[tuple[str, bool]] = []
    process = fake_stripe._process

    def checking(method, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        other = sqlite3.connect(make_url(database_url).database, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            free.append((path, True))
        except sqlite3.OperationalError:
            free.append((path, False))
        finally:
            other.close()
        return process(method, path, *args, **kwargs)

    fake_stripe._process = checking
    answer = Api(app.test_client(), key).post(f"/api/v1/partners/{partner_id}/stripe/onboarding")
    assert answer.status_code == 200, answer.json
    assert [path for path, _ in free] == ["/v1/accounts", "/v1/account_links"]
    assert all(ok for _, ok in free), free
    with committed_db.session_scope() as session:
        assert session.get(Partner, partner_id).stripe_account_id == answer.json["account_id"]


@pytest.mark.parametrize("same_account", [True, False])
def test_an_onboarding_that_finds_the_account_stored_meanwhile_keeps_the_stored_one(
    client, session, fake_stripe, same_account
):
    # Another request for the partner stores an account while this one waits for Stripe: the same
    # one (Stripe keys the creation by partner) is answered without a second audit; another one is
    # a 409, and the stored account stays.
    partner = make_partner(session, name="P", email="p@example.com")
    me = Api(client, make_key(session, role="partner", partner=partner))
    process = fake_stripe._process

    def meanwhile(method, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        answer = process(method, path, *args, **kwargs)
        if path == "/v1/account_links":
            (created,) = fake_stripe.accounts
            session.execute(
                update(Partner)
                .where(Partner.id == partner.id)
                .values(stripe_account_id=created if same_account else "acct_other")
            )
        return answer

    fake_stripe._process = meanwhile
    answer = me.post(f"/api/v1/partners/{partner.id}/stripe/onboarding")
    session.expire_all()
    stored = session.get(Partner, partner.id).stripe_account_id
    audits = session.scalars(select(AuditLog).where(AuditLog.action == "stripe.account_created")).all()
    assert audits == []
    if same_account:
        assert answer.status_code == 200, answer.json
        assert answer.json["account_id"] == stored == next(iter(fake_stripe.accounts))
    else:
        assert answer.status_code == 409
        assert answer.json["code"] == "onboarding_conflict"
        assert stored == "acct_other"
