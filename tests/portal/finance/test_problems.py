"""Failed and unknown-outcome payouts in the finance console, with their reasons and the payouts domain's
retries: recovery with the same key for an unknown outcome, a new build for a failed payout's entries."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from network.payouts import jobs, phases
from network.payouts.gateway import StripeGateway, TransferResult
from network.payouts.models import AuditLog, Payout
from tests.payouts.support import NOW, check_invariants
from tests.portal.conftest import csrf_token
from tests.portal.finance.conftest import page, rows, text
from tests.portal.finance.test_runs import _approve


def _post(client, path: str):
    token = csrf_token(page(client, "/finance/problems"))
    return client.post(path, data={"csrf_token": token})


def test_a_failed_payout_shows_its_reason_and_a_rebuild_makes_a_new_one(finance, money, session, db, settings):
    usd = money.payouts[("Deal Blog", "USD")]
    _approve(finance, usd.id)
    # Stripe is the gateway and Deal Blog has no connected account: the payout fails without a call.
    gateway = StripeGateway(api_key="sk_test_unused", api_base="http://127.0.0.1:9")
    jobs.run_payouts(db, settings, gateway=gateway, steps=("settle",))
    html = page(finance, "/finance/problems")
    failed = [r for r in rows(html) if len(r) == 6]
    assert failed == [
        [f"#{usd.id}", "Deal Blog", "19.50 USD", "the partner has no connected Stripe account", "1", "2026-03-09 12:00"]
    ]
    r = _post(finance, "/finance/problems/rebuild")
    assert r.status_code == 302
    listing = page(finance, r.headers["Location"])
    assert "built 1 payouts: they wait for approval." in listing
    (again,) = [r for r in rows(listing) if len(r) == 8]
    assert again[2:5] == ["Deal Blog", "19.50 USD", "2"] and again[1] != f"#{usd.id}"
    check_invariants(session)


def _unknown(session, payout: Payout) -> None:
    """Send the payout and record an unknown outcome (a timeout), ten minutes ago: its lease has run out."""
    at = NOW - dt.timedelta(minutes=10)
    (order,) = phases.lease_approved(session, gateway="manual", actor="test", run_id=None, limit=10, now=at)
    phases.record_outcomes(
        session, [(order, TransferResult("unknown", None, "timed out"))], actor="test", run=None, now=at
    )
    session.flush()


def test_an_unknown_outcome_shows_its_reason_and_is_retried_with_its_key(finance, money, session, frozen_clock):
    coupons = money.payouts[("Coupon Club", "USD")]
    frozen_clock(NOW - dt.timedelta(minutes=20))
    _approve(finance, coupons.id)
    _unknown(session, coupons)
    frozen_clock(NOW)
    html = page(finance, "/finance/problems")
    unknown = [r for r in rows(html) if len(r) == 7]
    assert unknown == [[f"#{coupons.id}", "Coupon Club", "30.00 USD", "timed out", "1", "2026-03-09 11:50", "now"]]
    r = _post(finance, "/finance/problems/recover")
    assert r.status_code == 302 and r.headers["Location"].startswith("/finance/runs/")
    assert "retried them: 1 paid, 0 failed, 0 still unknown." in page(finance, r.headers["Location"])
    session.expire_all()
    paid = session.get(Payout, coupons.id)
    assert paid.status == "paid" and paid.reference == f"manual:payout-{coupons.id}"
    asked = session.scalars(select(AuditLog).where(AuditLog.action == "run.recover_requested")).one()
    assert asked.actor.startswith("finance:user:") and asked.details == {"paid": 1, "failed": 0, "unknown": 0}
    check_invariants(session)
    # Nothing left: the retry says so and records no run.
    r = _post(finance, "/finance/problems/recover")
    assert r.status_code == 302 and "Nothing to retry now" in page(finance, "/finance/problems")


def test_a_payout_still_leased_is_shown_as_being_sent_and_not_retried_yet(finance, money, session):
    coupons = money.payouts[("Coupon Club", "USD")]
    _approve(finance, coupons.id)
    phases.lease_approved(session, gateway="manual", actor="test", run_id=None, limit=10, now=NOW)
    session.flush()
    (row,) = [r for r in rows(page(finance, "/finance/problems")) if len(r) == 7]
    assert row[3] == "being sent" and row[6] == "2026-03-09 12:05:00"
    r = _post(finance, "/finance/problems/recover")
    assert r.status_code == 302 and r.headers["Location"] == "/finance/problems"
    session.expire_all()
    assert session.get(Payout, coupons.id).status == "processing"


def test_the_retries_need_their_csrf_token(finance, money):
    for path in ("/finance/problems/recover", "/finance/problems/rebuild"):
        r = finance.post(path)
        assert r.status_code == 400 and "Form expired" in text(r)
