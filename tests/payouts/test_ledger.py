"""The append-only ledger: entries from conversion signals, balances, the ledger API, traffic accrual."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from network.conversions.signals import status_changed
from network.payouts import jobs, ledger
from network.payouts.models import LedgerEntry
from network.tracking.models import Click, ImpressionCount
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import NOW, check_invariants, make_commission, make_link, make_shop, undo


def entries(session, partner_id):
    return [
        (e.kind, e.amount_minor, e.currency)
        for e in session.scalars(
            select(LedgerEntry).where(LedgerEntry.partner_id == partner_id).order_by(LedgerEntry.id)
        )
    ]


def test_approval_books_one_commission_and_a_replayed_signal_books_nothing(session):
    shop = make_shop(session)
    partner = make_partner(session)
    conversion = make_commission(session, offer=shop.offer, partner=partner, payout="12.50")
    for _ in range(3):  # the same signal again (a retried transaction, a replayed postback)
        status_changed.send(
            session=session, conversion=conversion, old_status="pending", new_status="approved", at=NOW, reason=None
        )
    assert entries(session, partner.id) == [("commission", 1250, "USD")]
    check_invariants(session)


def test_pending_counts_as_pending_and_rejection_from_pending_books_nothing(session):
    shop = make_shop(session)
    partner = make_partner(session)
    pending = make_commission(session, offer=shop.offer, partner=partner, payout="3.00", status="pending")
    make_commission(session, offer=shop.offer, partner=partner, payout="7.00")
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["pending"], line["available"], line["paid"]) == (300, 700, 0)
    undo(session, pending, status="rejected")
    assert entries(session, partner.id) == [("commission", 700, "USD")]
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["pending"], line["available"]) == (0, 700)
    check_invariants(session)


@pytest.mark.parametrize("status", ["reversed", "rejected"])
def test_undoing_an_approved_conversion_books_a_reversal_once(session, status):
    shop = make_shop(session)
    partner = make_partner(session)
    conversion = make_commission(session, offer=shop.offer, partner=partner, payout="9.99")
    undo(session, conversion, status=status)
    status_changed.send(
        session=session, conversion=conversion, old_status="approved", new_status=status, at=NOW, reason=None
    )
    assert entries(session, partner.id) == [("commission", 999, "USD"), ("reversal", -999, "USD")]
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["available"], line["balance"]) == (0, 0)
    check_invariants(session)


def test_ledger_entries_cannot_be_updated_or_deleted(db, dialect):
    with db.session_scope() as session:
        shop = make_shop(session)
        partner = make_partner(session)
        make_commission(session, offer=shop.offer, partner=partner, payout="1.00")
    session = db.session()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE ledger_entries SET amount_minor = 100000"))
    if dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text("DELETE FROM ledger_entries"))
    assert session.scalar(select(LedgerEntry.amount_minor)) == 100
    session.close()


def test_balance_endpoint_per_role(app, client, session):
    shop = make_shop(session)
    partner, other = make_partner(session, name="P"), make_partner(session, name="Q")
    make_commission(session, offer=shop.offer, partner=partner, payout="80.00")
    make_commission(session, offer=shop.offer, partner=partner, payout="1.50", status="pending")
    eur = make_shop(session, currency="EUR", name="Euro Shop")
    make_commission(session, offer=eur.offer, partner=partner, payout="5.00")
    expected = {
        "partner_id": partner.id,
        "items": [
            {
                "currency": "EUR",
                "pending": "0.00",
                "available": "5.00",
                "in_payout": "0.00",
                "paid": "0.00",
                "balance": "5.00",
            },
            {
                "currency": "USD",
                "pending": "1.50",
                "available": "80.00",
                "in_payout": "0.00",
                "paid": "0.00",
                "balance": "80.00",
            },
        ],
        "limit": 100,
        "next_after": None,
    }
    for key in (
        make_key(session, role="partner", partner=partner),
        make_key(session, role="finance"),
        make_key(session, role="admin"),
    ):
        r = Api(client, key).get(f"/api/v1/partners/{partner.id}/balance")
        assert r.status_code == 200, r.json
        assert r.json == expected
    # Paged like every list: one currency a page, the cursor a position.
    paged = Api(client, make_key(session, role="finance")).get(f"/api/v1/partners/{partner.id}/balance?limit=1")
    assert (paged.json["items"], paged.json["next_after"]) == (expected["items"][:1], 1)
    paged = Api(client, make_key(session, role="finance")).get(f"/api/v1/partners/{partner.id}/balance?limit=1&after=1")
    assert (paged.json["items"], paged.json["next_after"]) == (expected["items"][1:], 2)
    for key in (make_key(session, role="partner", partner=other), make_key(session, role="brand", brand=shop.brand)):
        assert Api(client, key).get(f"/api/v1/partners/{partner.id}/balance").status_code == 404
        assert Api(client, key).get(f"/api/v1/partners/{partner.id}/ledger").status_code == 404
    assert Api(client, None).get(f"/api/v1/partners/{partner.id}/balance").status_code == 401


def test_ledger_endpoint_pages_oldest_first(client, session):
    shop = make_shop(session)
    partner = make_partner(session)
    for cents in (100, 200, 300, 400, 500):
        make_commission(session, offer=shop.offer, partner=partner, payout=cents)
    api = Api(client, make_key(session, role="partner", partner=partner))
    first = api.get(f"/api/v1/partners/{partner.id}/ledger?limit=2").json
    assert [e["amount"] for e in first["items"]] == ["1.00", "2.00"]
    assert first["items"][0]["kind"] == "commission" and first["items"][0]["conversion_id"]
    rest = api.get(f"/api/v1/partners/{partner.id}/ledger?limit=10&after={first['next_after']}").json
    assert [e["amount"] for e in rest["items"]] == ["3.00", "4.00", "5.00"]
    assert rest["next_after"] is None
    assert api.get(f"/api/v1/partners/{partner.id}/ledger?limit=100000").status_code in (400, 422)
    assert api.get(f"/api/v1/partners/{partner.id}/ledger?kind=bogus").status_code in (400, 422)


def test_adjustment_is_finance_only_and_audited(client, session):
    partner = make_partner(session)
    body = {"currency": "USD", "amount": "-2.50", "memo": "duplicate order"}
    r = Api(client, make_key(session, role="partner", partner=partner)).post(
        f"/api/v1/partners/{partner.id}/adjustments", json=body
    )
    assert r.status_code == 403
    finance = Api(client, make_key(session, role="finance"))
    r = finance.post(f"/api/v1/partners/{partner.id}/adjustments", json=body)
    assert r.status_code == 201, r.json
    assert (r.json["kind"], r.json["amount"]) == ("adjustment", "-2.50")
    assert finance.post(f"/api/v1/partners/{partner.id}/adjustments", json={**body, "amount": "0"}).status_code == 400
    assert finance.post(f"/api/v1/partners/{partner.id}/adjustments", json={**body, "status": "x"}).status_code in (
        400,
        422,
    )
    audit = session.execute(text("SELECT actor, action, object_id FROM audit_log")).all()
    assert [(a.action, a.object_id) for a in audit] == [("ledger.adjustment", str(partner.id))]
    assert audit[0].actor.startswith("finance:")


def _click(session, link, at, **flags):
    import secrets

    session.add(
        Click(
            id=secrets.token_hex(16),
            link_id=link.id,
            offer_id=link.offer_id,
            partner_id=link.partner_id,
            created_at=at,
            **flags,
        )
    )


def test_cpc_and_cpm_accrue_daily_from_billable_traffic_once(db):
    day = dt.date(2026, 3, 8)
    noon = dt.datetime(2026, 3, 8, 12, tzinfo=NOW.tzinfo)
    with db.session_scope() as session:
        shop = make_shop(session)
        shop.offer.click_payout_minor = 7  # 0.07 per unique, non-bot click
        shop.offer.impression_payout_minor = 250  # 2.50 per 1,000 impressions
        partner = make_partner(session)
        link = make_link(session, offer=shop.offer, partner=partner)
        for _ in range(3):
            _click(session, link, noon)
        _click(session, link, noon, is_unique=False)
        _click(session, link, noon, is_bot=True)
        _click(session, link, noon, fallback_reason="paused")
        _click(session, link, noon + dt.timedelta(hours=13))  # the next day
        session.add(
            ImpressionCount(link_id=link.id, offer_id=shop.offer.id, partner_id=partner.id, day=day, count=1234)
        )
        partner_id, offer_id = partner.id, shop.offer.id
    assert jobs.accrue_traffic(db, now=dt.datetime(2026, 3, 9, 0, 30, tzinfo=NOW.tzinfo), days=1) == 2
    assert jobs.accrue_traffic(db, now=dt.datetime(2026, 3, 9, 0, 30, tzinfo=NOW.tzinfo), days=3) == 0
    session = db.session()
    rows = session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount_minor, LedgerEntry.idempotency_key, LedgerEntry.memo)
        .where(LedgerEntry.partner_id == partner_id)
        .order_by(LedgerEntry.kind)
    ).all()
    # 3 billable clicks * 7; 1,234 impressions * 2.50 / 1000 = 3.085 -> 3.09 (half-up, once).
    assert [(r.kind, r.amount_minor, r.idempotency_key) for r in rows] == [
        ("cpc", 21, f"cpc-{offer_id}-{partner_id}-2026-03-08"),
        ("cpm", 309, f"cpm-{offer_id}-{partner_id}-2026-03-08"),
    ]
    check_invariants(session)
    session.close()
