"""The finance console's payouts: signing in lands on those awaiting approval with their totals per currency;
the filters narrow list and totals; bulk approve, hold and cancel ask first, stating the count and the sum,
then decide through the payouts service (its transitions, its audit log); one payout's page shows its
entries, its history and the decisions open to it."""

from __future__ import annotations

import re

from sqlalchemy import select

from network.payouts.models import AuditLog, LedgerEntry, Payout
from tests.payouts.support import check_invariants
from tests.portal.conftest import csrf_token, sign_in
from tests.portal.finance.conftest import FINANCE, page, rows, text

HTMX = {"HX-Request": "true"}


def _bulk(client, ids, action, *, confirmed=False, note="", headers=None, back="status=pending_approval"):
    token = csrf_token(page(client, "/finance/"))
    data = {"payout_id": [str(i) for i in ids], "action": action, "note": note, "back": back, "csrf_token": token}
    if confirmed:
        data["confirmed"] = "yes"
    return client.post("/finance/payouts/bulk", data=data, headers=headers or {})


def _statuses(session, money):
    session.expire_all()
    return {key: session.get(Payout, p.id).status for key, p in money.payouts.items()}


def test_finance_signs_in_to_the_payouts_awaiting_approval_with_totals_per_currency(client, money):
    assert sign_in(client, FINANCE).status_code == 302
    r = client.get("/", follow_redirects=True)
    assert r.request.path == "/finance/"
    html = text(r)
    table = rows(html)
    # Currency, payouts, sum: of every payout the filters select.
    assert ["EUR", "1", "60.00 EUR"] in table and ["USD", "2", "49.50 USD"] in table
    listed = [r[1:5] for r in table if len(r) == 8]
    deals_usd = money.payouts[("Deal Blog", "USD")]
    assert [f"#{deals_usd.id}", "Deal Blog", "19.50 USD", "2"] in listed
    assert len(listed) == 3
    # The console's navigation, for finance only.
    for label in ("Payouts", "Runs", "Failed", "Ledgers", "Audit log"):
        assert f">{label}</a>" in html


def test_the_filters_narrow_the_list_and_its_totals(finance, money, session):
    coupons = money.coupons.id
    html = page(finance, "/finance/", status="pending_approval", partner_id=str(coupons))
    assert ["USD", "1", "30.00 USD"] in rows(html) and "EUR" not in "".join(map(str, rows(html)))
    assert [r[2] for r in rows(html) if len(r) == 8] == ["Coupon Club"]
    assert rows(page(finance, "/finance/", status="paid"))[0] == ["No payout matches."]
    run_id = money.payouts[("Deal Blog", "USD")].run_id
    assert len([r for r in rows(page(finance, "/finance/", status="", run_id=str(run_id))) if len(r) == 8]) == 3
    r = finance.get("/finance/", query_string={"run_id": "x"})
    assert r.status_code == 400 and 'id="run_id-error"' in text(r)
    r = finance.get("/finance/", query_string={"status": "nonsense"})
    assert r.status_code == 400 and 'id="status-error"' in text(r)


def test_bulk_approve_asks_first_stating_the_count_and_the_sum(finance, money, session):
    ids = [p.id for p in money.payouts.values()]
    r = _bulk(finance, ids, "approve", note="checked the invoices")
    html = text(r)
    assert r.status_code == 200
    assert "Approve 3 payouts: 60.00 EUR and 49.50 USD?" in html
    assert "Yes, approve 3 payouts: 60.00 EUR and 49.50 USD" in html
    # Nothing is decided until the confirmation is sent.
    assert set(_statuses(session, money).values()) == {"pending_approval"}
    token = csrf_token(html)
    confirm = dict(re.findall(r'<input[^>]*name="(action|note|confirmed|back)"[^>]*value="([^"]*)"', html))
    assert confirm == {
        "action": "approve",
        "note": "checked the invoices",
        "confirmed": "yes",
        "back": "status=pending_approval",
    }
    hidden = re.findall(r'name="payout_id" value="(\d+)"', html)
    r = finance.post(
        "/finance/payouts/bulk", data={**confirm, "payout_id": hidden, "csrf_token": token}, follow_redirects=True
    )
    assert r.status_code == 200 and r.request.path == "/finance/"
    assert "Approved 3 payouts: 60.00 EUR and 49.50 USD." in text(r)
    assert set(_statuses(session, money).values()) == {"approved"}
    approved = session.scalars(select(AuditLog).where(AuditLog.action == "payout.approved")).all()
    assert len(approved) == 3 and {a.actor.split(":")[:2] == ["finance", "user"] for a in approved} == {True}
    assert {a.details["note"] for a in approved} == {"checked the invoices"}
    check_invariants(session)


def test_bulk_hold_and_cancel_leave_payouts_their_status_does_not_allow(finance, money, session):
    usd = money.payouts[("Deal Blog", "USD")]
    eur = money.payouts[("Deal Blog", "EUR")]
    assert _bulk(finance, [usd.id], "hold", confirmed=True).status_code == 302
    html = text(_bulk(finance, [usd.id, eur.id], "hold"))
    # The held one is not counted: the confirmation states what the decision moves.
    assert "Hold 1 payout: 60.00 EUR?" in html and f"#{usd.id} (on hold)" in html
    r = _bulk(finance, [usd.id, eur.id], "cancel", confirmed=True)
    assert r.status_code == 302
    statuses = _statuses(session, money)
    assert statuses[("Deal Blog", "USD")] == "canceled" and statuses[("Deal Blog", "EUR")] == "canceled"
    assert statuses[("Coupon Club", "USD")] == "pending_approval"
    follow = page(finance, "/finance/")
    assert "Canceled 2 payouts: 60.00 EUR and 19.50 USD." in follow
    # Canceled: their entries are back in the balance.
    check_invariants(session)
    html = text(_bulk(finance, [usd.id], "approve"))
    assert "Approve 0 payouts: nothing?" in html and "None of the ticked payouts can be moved" in html


def test_bulk_without_ticks_or_token_changes_nothing(finance, money, session):
    r = finance.post(
        "/finance/payouts/bulk",
        data={"action": "approve", "payout_id": [str(money.payouts[("Coupon Club", "USD")].id)], "confirmed": "yes"},
    )
    assert r.status_code == 400 and "Form expired" in text(r)
    r = _bulk(finance, [], "approve", confirmed=True)
    assert r.status_code == 302
    assert "tick at least one payout" in page(finance, "/finance/")
    assert set(_statuses(session, money).values()) == {"pending_approval"}


def test_an_unknown_payout_in_a_bulk_decision_is_404_and_changes_nothing(finance, money, session):
    r = _bulk(finance, [money.payouts[("Coupon Club", "USD")].id, 10**6], "approve", confirmed=True)
    assert r.status_code == 404
    assert set(_statuses(session, money).values()) == {"pending_approval"}


def test_htmx_gets_the_confirmation_as_a_fragment(finance, money):
    r = _bulk(finance, [money.payouts[("Coupon Club", "USD")].id], "approve", headers=HTMX)
    html = text(r)
    assert r.status_code == 200 and "<html" not in html and "<nav" not in html
    assert "Approve 1 payout: 30.00 USD?" in html and 'name="csrf_token"' in html
    # The page the fragment goes into holds its target and loads htmx from the app itself.
    listing = page(finance, "/finance/")
    assert 'id="confirmation"' in listing and 'hx-post="/finance/payouts/bulk"' in listing
    assert "/account/assets/vendor/htmx.min.js" in listing


def test_htmx_gets_a_refusal_in_place_of_the_confirmation(finance, money, session):
    r = _bulk(finance, [], "approve", headers=HTMX)
    html = text(r)
    assert r.status_code == 200 and "<html" not in html and 'role="alert"' in html
    assert "Nothing was changed: tick at least one payout." in html
    assert set(_statuses(session, money).values()) == {"pending_approval"}


def test_tick_all_ticks_every_payout_of_the_page(finance, money):
    assert page(finance, "/finance/").count(" checked>") == 0
    assert page(finance, "/finance/", tick="all").count(" checked>") == 3


def test_a_payout_page_shows_its_entries_history_and_decisions(finance, money, session):
    usd = money.payouts[("Deal Blog", "USD")]
    html = page(finance, f"/finance/payouts/{usd.id}")
    table = rows(html)
    entries = [r for r in table if len(r) == 7]
    assert [(r[2], r[3]) for r in entries] == [("commission", "7.00 USD"), ("commission", "12.50 USD")]
    assert [r[2] for r in table if len(r) == 4] == ["payout.built"]
    assert ">Approve: 19.50 USD</button>" in html and ">Cancel: 19.50 USD</button>" in html
    assert "Release from hold" not in html
    token = csrf_token(html)
    r = finance.post(
        f"/finance/payouts/{usd.id}/decide", data={"action": "hold", "note": "ask first", "csrf_token": token}
    )
    assert r.status_code == 302
    html = page(finance, f"/finance/payouts/{usd.id}")
    assert "Held payout #" in html and "On hold" in html
    history = [r for r in rows(html) if len(r) == 4]
    assert history[-1][1:] == [FINANCE, "payout.on_hold", "amount=19.50, from=pending_approval, note=ask first"]
    assert ">Release from hold: 19.50 USD</button>" in html and ">Approve: 19.50 USD</button>" not in html
    # A decision the status no longer allows (another tab) is refused by the service, and said so.
    r = finance.post(
        f"/finance/payouts/{usd.id}/decide", data={"action": "approve", "csrf_token": token}, follow_redirects=True
    )
    assert "Not changed: cannot approve a payout that is on_hold." in text(r)
    session.expire_all()
    assert session.get(Payout, usd.id).status == "on_hold"


def test_a_paid_payout_shows_its_debit_and_who_approved_it(finance, money, session, db, settings):
    from network.payouts import jobs

    coupons = money.payouts[("Coupon Club", "USD")]
    assert _bulk(finance, [coupons.id], "approve", confirmed=True).status_code == 302
    jobs.run_payouts(db, settings, steps=("settle",))
    html = page(finance, f"/finance/payouts/{coupons.id}")
    kinds = [(r[2], r[3]) for r in rows(html) if len(r) == 7]
    assert kinds == [("commission", "30.00 USD"), ("payout", "-30.00 USD")]
    assert "Paid" in html and f"manual:payout-{coupons.id}" in html and f"by {FINANCE}" in html
    assert "Approve:" not in html
    assert session.scalars(select(LedgerEntry).where(LedgerEntry.payout_id == coupons.id)).one().amount_minor == -3000
