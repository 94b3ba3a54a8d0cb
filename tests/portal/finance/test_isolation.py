"""RELIABILITY.md case 31 for the finance console: finance is not a tenant, but a brand or partner user reaching
any of its pages, htmx fragments or downloads gets 404, as the API answers another tenant's object, and
changes nothing; a signed-out visitor is sent to sign in. The routes are read from the app, so a page added
later is covered without being listed here."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from network.payouts.models import AuditLog, LedgerEntry, Payout, PayoutRun
from tests.portal.conftest import csrf_token, make_user, sign_in
from tests.portal.finance.conftest import FINANCE, text

HTMX = {"HX-Request": "true"}


def _routes(app, money) -> list[tuple[str, str]]:
    """(method, path) of every route of the console, its ids those of real rows."""
    payout = money.payouts[("Deal Blog", "USD")]
    ids = {
        "payout_id": payout.id,
        "run_id": payout.run_id,
        "partner_id": money.deals.id,
        "invoice_id": money.invoice_id,
    }
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("portal.finance."):
            continue
        path = rule.rule
        for name, value in ids.items():
            path = path.replace(f"<int:{name}>", str(value))
        path = re.sub(r"<any\([^>]*\):action>", "void", path)
        assert "<" not in path, path
        found.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return sorted(found)


def _money_rows(session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        session.scalar(select(func.count()).select_from(model)) for model in (AuditLog, LedgerEntry, Payout, PayoutRun)
    ) + tuple(session.scalars(select(Payout.status).order_by(Payout.id)))


def test_the_console_has_the_pages_the_issue_asks_for(app, money):
    paths = {path for _, path in _routes(app, money)}
    payout, run, partner = (
        money.payouts[("Deal Blog", "USD")].id,
        money.payouts[("Deal Blog", "USD")].run_id,
        money.deals.id,
    )
    assert {
        "/finance/",
        "/finance/payouts/bulk",
        f"/finance/payouts/{payout}",
        f"/finance/payouts/{payout}/decide",
        "/finance/runs",
        f"/finance/runs/{run}",
        f"/finance/runs/{run}/export",
        "/finance/problems",
        "/finance/problems/recover",
        "/finance/problems/rebuild",
        "/finance/partners",
        f"/finance/partners/{partner}",
        f"/finance/partners/{partner}/adjustments",
        f"/finance/partners/{partner}/ledger.csv",
        "/finance/audit",
        "/finance/audit.csv",
        "/finance/invoices",
        "/finance/invoices/build",
        f"/finance/invoices/{money.invoice_id}",
        f"/finance/invoices/{money.invoice_id}/pdf",
        f"/finance/invoices/{money.invoice_id}/void",
        "/finance/margin",
    } == paths


@pytest.mark.parametrize("email", ["brand@example.com", "ops@dealblog.example"])
def test_brand_and_partner_users_get_404_on_every_page_fragment_and_download(app, client, money, session, email):
    assert sign_in(client, email).status_code == 302
    token = csrf_token(text(client.get("/account/profile")))
    before = _money_rows(session)
    payout = money.payouts[("Deal Blog", "USD")]
    form = {
        "csrf_token": token,
        "payout_id": [str(payout.id)],
        "action": "approve",
        "confirmed": "yes",
        "currency": "USD",
        "amount": "5.00",
        "memo": "x",
    }
    for method, path in _routes(app, money):
        for headers in ({}, HTMX):
            if method == "GET":
                r = client.get(path, headers=headers)
            else:
                r = client.post(path, data=form, headers=headers)
            assert r.status_code == 404, (method, path, headers, r.status_code)
            body = text(r)
            assert "Deal Blog" not in body and "19.50" not in body and "payout" not in body.lower(), (method, path)
            r.close()
    assert _money_rows(session) == before
    # The partner's own money page still answers it: only the console is closed to it.
    if email.startswith("ops@"):
        assert client.get("/partner/money").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in_and_their_posts_refused(app, client, money, session):
    before = _money_rows(session)
    for method, path in _routes(app, money):
        if method == "GET":
            r = client.get(path)
            assert r.status_code == 302 and "/account/sign-in" in r.headers["Location"], path
        else:
            assert client.post(path).status_code == 400, path
    assert _money_rows(session) == before


def test_an_admin_may_use_the_console(app, client, money, session):
    make_user(session, email="root@example.com")
    sign_in(client, "root@example.com")
    for method, path in _routes(app, money):
        if method == "GET" and not path.endswith(("/export", ".csv")):
            assert client.get(path).status_code == 200, path
    assert FINANCE not in text(client.get("/finance/"))
