"""Partners' ledgers in the finance console: balance, entries (filtered, as CSV), manual adjustments with a
memo through the ledger service (a refused amount said beside its field), and the audit log of every money
decision with its CSV."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select

from network.payouts.models import AuditLog, LedgerEntry
from tests.payouts.support import check_invariants
from tests.portal.conftest import csrf_token
from tests.portal.finance.conftest import FINANCE, page, rows, text


def _adjust(client, partner_id: int, **data: str):
    token = csrf_token(page(client, f"/finance/partners/{partner_id}"))
    return client.post(f"/finance/partners/{partner_id}/adjustments", data={**data, "csrf_token": token})


def _csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv", response.status_code
    assert response.headers["Content-Disposition"].startswith("attachment;")
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_the_partners_page_links_each_ledger(finance, money):
    html = page(finance, "/finance/partners")
    assert [r[:3] for r in rows(html)] == [
        [f"#{money.deals.id}", "Deal Blog", "active"],
        [f"#{money.coupons.id}", "Coupon Club", "active"],
    ]
    assert f'href="/finance/partners/{money.deals.id}"' in html


def test_a_ledger_shows_balances_and_entries_and_filters_them(finance, money):
    path = f"/finance/partners/{money.deals.id}"
    html = page(finance, path)
    table = rows(html)
    # Currency, pending, available, in a payout, paid, balance.
    assert ["EUR", "0.00", "0.00", "60.00", "0.00", "60.00"] in table
    assert ["USD", "0.00", "0.00", "19.50", "0.00", "19.50"] in table
    entries = [r for r in table if len(r) == 7]
    assert [r[3] for r in entries] == ["7.00 USD", "12.50 USD", "60.00 EUR"]
    only_eur = [r for r in rows(page(finance, path, currency="EUR")) if len(r) == 7]
    assert [r[3] for r in only_eur] == ["60.00 EUR"]
    assert "Coupon Club" not in html and "30.00" not in html
    # The adjustment's currency starts on the partner's own (by code: EUR), not the list's first (AED).
    assert '<option selected value="EUR">EUR</option>' in html
    assert finance.get(path, query_string={"kind": "bogus"}).status_code == 400
    assert finance.get("/finance/partners/999999").status_code == 404


def test_an_adjustment_is_booked_with_its_memo_and_audited(finance, money, session):
    r = _adjust(finance, money.deals.id, currency="USD", amount="-2.50", memo="=double-counted sale")
    assert r.status_code == 302
    html = page(finance, r.headers["Location"])
    assert "Adjustment #" in html and "booked: -2.50 USD." in html
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "adjustment")).one()
    assert (entry.partner_id, entry.amount_minor, entry.memo) == (money.deals.id, -250, "=double-counted sale")
    assert ["USD", "0.00", "-2.50", "19.50", "0.00", "17.00"] in rows(html)
    (audit,) = session.scalars(select(AuditLog).where(AuditLog.action == "ledger.adjustment")).all()
    assert audit.actor.startswith("finance:user:") and audit.details["memo"] == "=double-counted sale"
    history = [r for r in rows(html) if len(r) == 4]
    assert history[-1][1:3] == [FINANCE, "ledger.adjustment"]
    check_invariants(session)


def test_a_refused_adjustment_says_why_beside_the_field_and_books_nothing(finance, money, session):
    for data, field, why in (
        ({"currency": "USD", "amount": "0", "memo": "x"}, "amount", "must not be zero"),
        ({"currency": "USD", "amount": "1.005", "memo": "x"}, "amount", ""),
        ({"currency": "USD", "amount": "abc", "memo": "x"}, "amount", ""),
        ({"currency": "USD", "amount": "5.00", "memo": ""}, "memo", "say why"),
        ({"currency": "USD", "amount": "5.00", "memo": "bad\x00memo"}, "memo", "control characters"),
        ({"currency": "XXX", "amount": "5.00", "memo": "x"}, "currency", ""),
    ):
        r = _adjust(finance, money.deals.id, **data)
        assert r.status_code == 400, data
        assert f'id="{field}-error"' in text(r) and why in text(r), data
    assert session.scalars(select(LedgerEntry).where(LedgerEntry.kind == "adjustment")).all() == []


def test_the_ledger_downloads_as_csv_with_free_text_neutralised(finance, money):
    assert _adjust(finance, money.deals.id, currency="USD", amount="1.00", memo="=HYPERLINK(1)").status_code == 302
    table = _csv(finance.get(f"/finance/partners/{money.deals.id}/ledger.csv"))
    assert [(t["kind"], t["amount"], t["currency"]) for t in table] == [
        ("commission", "7.00", "USD"),
        ("commission", "12.50", "USD"),
        ("commission", "60.00", "EUR"),
        ("adjustment", "1.00", "USD"),
    ]
    assert table[-1]["memo"] == "'=HYPERLINK(1)"
    only = _csv(finance.get(f"/finance/partners/{money.deals.id}/ledger.csv", query_string={"currency": "EUR"}))
    assert [t["amount"] for t in only] == ["60.00"]


def test_the_audit_log_shows_who_did_what_when_and_downloads(finance, money, session):
    usd = money.payouts[("Deal Blog", "USD")]
    token = csrf_token(page(finance, f"/finance/payouts/{usd.id}"))
    finance.post(
        f"/finance/payouts/{usd.id}/decide", data={"action": "cancel", "note": "duplicate", "csrf_token": token}
    )
    _adjust(finance, money.coupons.id, currency="USD", amount="3.00", memo="bonus")
    html = page(finance, "/finance/audit")
    logged = [r for r in rows(html) if len(r) == 5]
    # Newest first: when, who, what, on what, details.
    assert [r[1:4] for r in logged[:2]] == [
        [FINANCE, "ledger.adjustment", f"partner #{money.coupons.id}"],
        [FINANCE, "payout.canceled", f"payout #{usd.id}"],
    ]
    assert logged[1][4] == "amount=19.50, from=pending_approval, note=duplicate"
    assert logged[-1][2] == "run.built"
    only = [r for r in rows(page(finance, "/finance/audit", action="payout.")) if len(r) == 5]
    assert [r[2] for r in only] == ["payout.canceled"]
    by_id = [
        r for r in rows(page(finance, "/finance/audit", object_type="payout", object_id=str(usd.id))) if len(r) == 5
    ]
    assert [r[2] for r in by_id] == ["payout.canceled"]
    assert finance.get("/finance/audit", query_string={"object_id": "x"}).status_code == 400
    table = _csv(finance.get("/finance/audit.csv", query_string={"action": "ledger."}))
    assert [(t["person"], t["action"], t["object_type"], t["object_id"]) for t in table] == [
        (FINANCE, "ledger.adjustment", "partner", str(money.coupons.id))
    ]
