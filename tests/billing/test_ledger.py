"""The brand ledger: revenue booked with the partner's commission, reversals as credits, traffic accrual."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from network.billing import service
from network.billing.models import BrandEntry
from network.conversions.signals import status_changed
from network.payouts import jobs
from network.payouts.models import LedgerEntry
from network.tracking.models import Click, ImpressionCount
from tests.billing.support import check_billing_invariants
from tests.factories import make_partner
from tests.payouts.support import NOW, make_commission, make_link, make_shop, undo


def brand_entries(session, brand_id):
    return [
        (e.kind, e.amount_minor, e.quantity)
        for e in session.scalars(select(BrandEntry).where(BrandEntry.brand_id == brand_id).order_by(BrandEntry.id))
    ]


def test_an_approval_books_the_brands_revenue_beside_the_partners_commission_once(session):
    shop = make_shop(session)
    partner = make_partner(session)
    conversion = make_commission(session, offer=shop.offer, partner=partner, payout="12.50")
    for _ in range(3):  # a replayed signal books nothing more
        status_changed.send(
            session=session, conversion=conversion, old_status="pending", new_status="approved", at=NOW, reason=None
        )
    assert brand_entries(session, shop.brand.id) == [("revenue", 1250, 1)]
    assert session.scalar(select(LedgerEntry.amount_minor).where(LedgerEntry.conversion_id == conversion.id)) == 1250
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW)
    assert (row["balance"], row["unbilled"], row["invoiced"], row["paid"]) == (1250, 1250, 0, 0)
    check_billing_invariants(session)


@pytest.mark.parametrize("status", ["reversed", "rejected"])
def test_undoing_an_approved_conversion_credits_the_brand_once(session, status):
    shop = make_shop(session)
    conversion = make_commission(session, offer=shop.offer, partner=make_partner(session), payout="9.99")
    undo(session, conversion, status=status)
    status_changed.send(
        session=session, conversion=conversion, old_status="approved", new_status=status, at=NOW, reason=None
    )
    assert brand_entries(session, shop.brand.id) == [("revenue", 999, 1), ("reversal", -999, 1)]
    (row,) = service.balance_rows(session, shop.brand.id, now=NOW)
    assert row["balance"] == row["unbilled"] == 0
    check_billing_invariants(session)


def test_a_pending_conversion_rejected_books_nothing_for_the_brand(session):
    shop = make_shop(session)
    conversion = make_commission(
        session, offer=shop.offer, partner=make_partner(session), payout="3.00", status="pending"
    )
    undo(session, conversion, status="rejected")
    assert brand_entries(session, shop.brand.id) == []


def test_a_postback_batch_books_each_brands_revenue(app, session):
    # Two brands' conversions recorded together by the group commit's batch path.
    from network.conversions.signals import Change, send_many

    first, second = make_shop(session), make_shop(session, name="Other Shop", currency="EUR")
    partner = make_partner(session)
    a = make_commission(session, offer=first.offer, partner=partner, payout="1.00", status="pending")
    b = make_commission(session, offer=second.offer, partner=partner, payout="2.00", status="pending")
    send_many(session, [Change(a, None, "approved", NOW, None), Change(b, None, "approved", NOW, None)])
    assert brand_entries(session, first.brand.id) == [("revenue", 100, 1)]
    assert brand_entries(session, second.brand.id) == [("revenue", 200, 1)]


def test_brand_entries_cannot_be_updated_or_deleted(db, dialect):
    with db.session_scope() as session:
        shop = make_shop(session)
        make_commission(session, offer=shop.offer, partner=make_partner(session), payout="1.00")
    session = db.session()
    with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
        session.execute(text("UPDATE brand_entries SET amount_minor = 100000"))
    if dialect == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(text("DELETE FROM brand_entries"))
    assert session.scalar(select(BrandEntry.amount_minor)) == 100


def test_traffic_accrual_books_the_brands_cpc_and_cpm_revenue_once_per_day(db):
    day = NOW.date() - dt.timedelta(days=1)
    with db.session_scope() as session:
        shop = make_shop(session)
        shop.offer.click_payout_minor, shop.offer.click_revenue_minor = 10, 25
        shop.offer.impression_payout_minor, shop.offer.impression_revenue_minor = 100, 250
        partner = make_partner(session)
        link = make_link(session, offer=shop.offer, partner=partner)
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        for n, (unique, bot) in enumerate([(True, False), (True, False), (False, False), (True, True)]):
            session.add(
                Click(
                    id=f"c{n}", link_id=link.id, offer_id=shop.offer.id, partner_id=partner.id, created_at=at,
                    is_unique=unique, is_bot=bot,
                )
            )  # fmt: skip
        session.add(
            ImpressionCount(link_id=link.id, offer_id=shop.offer.id, partner_id=partner.id, day=day, count=1500)
        )
        brand_id = shop.brand.id
    for _ in range(2):
        jobs.accrue_traffic(db, now=NOW, days=2)
    with db.session_scope() as session:
        assert brand_entries(session, brand_id) == [("cpc", 50, 2), ("cpm", 375, 1500)]
        (row,) = service.balance_rows(session, brand_id, now=NOW)
        assert row["unbilled"] == 425
        check_billing_invariants(session)
