"""Building payouts in SQL, finance's decisions, the manual gateway, and RELIABILITY.md 19, 24, 25."""

from __future__ import annotations

import csv
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from network import money
from network.auth import SYSTEM
from network.payouts import attachment, jobs, ledger, service
from network.payouts.models import LedgerEntry, Payout, PayoutItem, PayoutItemRelease
from tests.factories import Api, make_key, make_partner
from tests.payouts.support import (
    check_invariants,
    exports_fixture,  # noqa: F401
    make_commission,
    make_shop,
    undo,
)


def payouts_of(session, partner_id=None):
    query = select(Payout).order_by(Payout.id)
    if partner_id is not None:
        query = query.where(Payout.partner_id == partner_id)
    session.expire_all()
    return list(session.scalars(query))


def approve_all(session):
    for payout in payouts_of(session):
        if payout.status == "pending_approval":
            service.decide(session, SYSTEM, payout.id, "approve")
    session.flush()


def test_build_makes_one_payout_per_partner_at_or_over_the_threshold(db, session, settings):
    shop = make_shop(session)
    rich, poor, lowered = (make_partner(session, name=n) for n in ("Rich", "Poor", "Lowered"))
    lowered.payout_min_amount = "10.00"
    make_commission(session, offer=shop.offer, partner=rich, payout="30.00")
    make_commission(session, offer=shop.offer, partner=rich, payout="20.00")  # exactly the 50.00 threshold
    make_commission(session, offer=shop.offer, partner=poor, payout="49.99")
    make_commission(session, offer=shop.offer, partner=lowered, payout="10.00")
    session.flush()

    summary = jobs.build(db, settings)
    built = payouts_of(session)
    assert summary.built == [p.id for p in built]
    assert [(p.partner_id, p.amount_minor, p.entry_count, p.status) for p in built] == [
        (rich.id, 5000, 2, "pending_approval"),
        (lowered.id, 1000, 1, "pending_approval"),
    ]
    assert jobs.build(db, settings).built == []  # everything available is attached already
    make_commission(session, offer=shop.offer, partner=rich, payout="1.00")
    (line,) = ledger.balance_rows(session, rich.id)
    assert (line["available"], line["in_payout"], line["paid"], line["balance"]) == (100, 5000, 0, 5100)
    check_invariants(session)


def test_an_offer_with_a_higher_threshold_holds_the_money_it_pays_until_that_threshold(db, session, settings):
    strict, plain = make_shop(session, name="Strict"), make_shop(session, name="Plain")
    strict.offer.payout_min_minor = 10000  # 100.00: above the 50.00 setting
    waiting, elsewhere = make_partner(session, name="Waiting"), make_partner(session, name="Elsewhere")
    make_commission(session, offer=strict.offer, partner=waiting, payout="60.00")
    make_commission(session, offer=plain.offer, partner=elsewhere, payout="60.00")
    jobs.build(db, settings)
    assert [(p.partner_id, p.amount_minor) for p in payouts_of(session)] == [(elsewhere.id, 6000)]

    make_commission(session, offer=plain.offer, partner=waiting, payout="30.00")  # 90.00: still under 100.00
    assert jobs.build(db, settings).built == []
    make_commission(session, offer=strict.offer, partner=waiting, payout="10.00")
    (built,) = jobs.build(db, settings).built
    payout = session.get(Payout, built)
    assert (payout.partner_id, payout.amount_minor, payout.entry_count) == (waiting.id, 10000, 3)
    check_invariants(session)


def test_an_offer_with_a_lower_threshold_pays_out_sooner_and_the_highest_offer_threshold_wins(db, session, settings):
    quick, plain, strict = (make_shop(session, name=n) for n in ("Quick", "Plain", "Strict"))
    quick.offer.payout_min_minor = 1000  # 10.00: below the 50.00 setting
    strict.offer.payout_min_minor = 8000
    mixed, both = make_partner(session, name="Mixed"), make_partner(session, name="Both")
    # An offer without a threshold adds to the balance but sets none: 12.00 + 8.00 reaches 10.00.
    make_commission(session, offer=quick.offer, partner=mixed, payout="12.00")
    make_commission(session, offer=plain.offer, partner=mixed, payout="8.00")
    # Money of two offers with thresholds waits for the higher one: 60.00 is under 80.00.
    make_commission(session, offer=quick.offer, partner=both, payout="30.00")
    make_commission(session, offer=strict.offer, partner=both, payout="30.00")
    jobs.build(db, settings)
    assert [(p.partner_id, p.amount_minor, p.entry_count) for p in payouts_of(session)] == [(mixed.id, 2000, 2)]
    check_invariants(session)


def test_money_that_joins_a_payout_while_it_is_built_counts_its_offers_threshold(db, session, settings, monkeypatch):
    quick, strict = make_shop(session, name="Quick"), make_shop(session, name="Strict")
    quick.offer.payout_min_minor, strict.offer.payout_min_minor = 1000, 8000
    partner = make_partner(session)
    make_commission(session, offer=quick.offer, partner=partner, payout="12.00")
    attach = attachment.attach

    def late_entry_then_attach(session, *args):
        # A commission committed between the sums and the attaching statement joins the payout.
        make_commission(session, offer=strict.offer, partner=partner, payout="5.00")
        return attach(session, *args)

    monkeypatch.setattr(attachment, "attach", late_entry_then_attach)
    assert jobs.build(db, settings).built == []  # 17.00 now holds Strict's money: under its 80.00
    assert session.scalars(select(PayoutItem.entry_id)).all() == []
    check_invariants(session)


def test_a_partners_own_threshold_wins_over_its_offers(db, session, settings):
    strict = make_shop(session, name="Strict")
    strict.offer.payout_min_minor = 10000
    partner = make_partner(session)
    partner.payout_min_amount = "5.00"
    make_commission(session, offer=strict.offer, partner=partner, payout="6.00")
    (built,) = jobs.build(db, settings).built
    assert session.get(Payout, built).amount_minor == 600
    check_invariants(session)


def test_an_entry_can_never_be_in_two_live_payouts(db, session, settings):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="60.00")
    (payout_id,) = jobs.build(db, settings).built
    entry_id = session.scalar(select(PayoutItem.entry_id).where(PayoutItem.payout_id == payout_id))
    other = Payout(partner_id=partner.id, currency="USD", amount_minor=6000, entry_count=1, status="pending_approval")
    session.add(other)
    session.flush()
    with pytest.raises(IntegrityError), session.begin_nested():
        session.execute(
            text("INSERT INTO payout_items (entry_id, payout_id) VALUES (:e, :p)"), {"e": entry_id, "p": other.id}
        )


def test_canceled_payout_returns_its_entries_to_the_next_build(db, session, settings):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="75.00")
    (first,) = jobs.build(db, settings).built
    service.decide(session, SYSTEM, first, "cancel", note="wrong bank details")
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["available"], line["in_payout"]) == (7500, 0)
    (second,) = jobs.build(db, settings).built
    assert second != first
    assert session.execute(select(PayoutItem.payout_id)).scalars().all() == [second]
    assert session.execute(select(PayoutItemRelease.payout_id)).scalars().all() == [first]
    check_invariants(session)


def test_rounding_ties_in_0_2_and_3_decimal_currencies_add_as_integers(db, session, settings):
    """RELIABILITY.md 19: half-up once per commission; payouts add the integers, never re-round."""
    partner = make_partner(session)
    partner.payout_min_amount = "0.001"
    cases = {
        # currency: (sale amount, percent, commission after half-up rounding, in minor units)
        "JPY": ("15", "10", 2),  # 1.5 yen -> 2
        "USD": ("1.05", "10", 11),  # 0.105 -> 0.11
        "BHD": ("0.005", "10", 1),  # 0.0005 -> 0.001
    }
    for currency, (amount, percent, expected) in cases.items():
        minor = money.percent_of(money.parse_amount(amount, currency), money.parse_percent(percent))
        assert minor == expected
        shop = make_shop(session, currency=currency, name=f"{currency} shop")
        for _ in range(3):
            make_commission(session, offer=shop.offer, partner=partner, payout=minor)
    jobs.build(db, settings)
    got = {p.currency: money.format_amount(p.amount_minor, p.currency) for p in payouts_of(session)}
    # Three ties each: 3 * 2 = 6 JPY (not 4.5 -> 5), 0.33 USD (not 0.315 -> 0.32), 0.003 BHD.
    assert got == {"JPY": "6", "USD": "0.33", "BHD": "0.003"}
    assert Decimal(got["USD"]) != round(3 * Decimal("0.105"), 2)
    check_invariants(session)


def test_usd_and_eur_make_one_payout_each_without_mixing(db, session, settings):
    """RELIABILITY.md 25."""
    partner = make_partner(session)
    usd, eur = make_shop(session), make_shop(session, currency="EUR", name="Euro")
    make_commission(session, offer=usd.offer, partner=partner, payout="40.00")
    make_commission(session, offer=usd.offer, partner=partner, payout="30.00")
    make_commission(session, offer=eur.offer, partner=partner, payout="55.00")
    make_commission(session, offer=eur.offer, partner=partner, payout="45.00")
    jobs.build(db, settings)
    assert sorted((p.currency, p.amount_minor, p.entry_count) for p in payouts_of(session)) == [
        ("EUR", 10000, 2),
        ("USD", 7000, 2),
    ]
    check_invariants(session)


def test_refund_after_payout_is_clawed_back_from_the_next_one(db, session, settings, exports):
    """RELIABILITY.md 24: a clawback entry; nothing while the balance is not positive; the next payout nets it."""
    shop = make_shop(session)
    partner = make_partner(session)
    refunded = make_commission(session, offer=shop.offer, partner=partner, payout="60.00")
    jobs.build(db, settings)
    approve_all(session)
    assert jobs.settle_approved(db, settings).paid
    undo(session, refunded)
    kinds = session.execute(select(LedgerEntry.kind, LedgerEntry.amount_minor).order_by(LedgerEntry.id)).all()
    assert kinds == [("commission", 6000), ("payout", -6000), ("clawback", -6000)]
    (line,) = ledger.balance_rows(session, partner.id)
    assert (line["available"], line["paid"], line["balance"]) == (-6000, 6000, -6000)

    partner.payout_min_amount = "0.00"  # even with no threshold: nothing while not positive
    make_commission(session, offer=shop.offer, partner=partner, payout="40.00")
    assert jobs.build(db, settings).built == []
    make_commission(session, offer=shop.offer, partner=partner, payout="25.00")
    (payout_id,) = jobs.build(db, settings).built
    payout = session.get(Payout, payout_id)
    assert (payout.amount_minor, payout.entry_count) == (500, 3)  # 40 + 25 - 60
    check_invariants(session)


def test_finance_decisions_follow_the_status_machine(client, session, db, settings):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="50.00")
    (payout_id,) = jobs.build(db, settings).built
    finance = Api(client, make_key(session, role="finance"))
    path = f"/api/v1/payouts/{payout_id}"

    assert finance.post(f"{path}/unhold").status_code == 409
    r = finance.post(f"{path}/hold", json={"note": "checking traffic"})
    assert (r.status_code, r.json["status"], r.json["note"]) == (200, "on_hold", "checking traffic")
    assert r.json["decided_by"].startswith("finance:")
    assert finance.post(f"{path}/approve").status_code == 409  # not from on_hold
    assert finance.post(f"{path}/unhold").json["status"] == "pending_approval"
    r = finance.post(f"{path}/approve")
    assert r.status_code == 200, r.json
    assert r.json["status"] == "approved" and r.json["approved_by"].startswith("finance:") and r.json["approved_at"]
    for action in ("approve", "hold", "cancel", "unhold"):
        r = finance.post(f"{path}/{action}")
        assert r.status_code == 409 and r.json["code"] == "invalid_transition", (action, r.json)
    assert finance.post(f"{path}/approve", json={"status": "paid"}).status_code in (400, 422)
    assert finance.post("/api/v1/payouts/999999/approve").status_code == 404
    actions = session.execute(text("SELECT action FROM audit_log WHERE object_type = 'payout' ORDER BY id")).scalars()
    assert list(actions) == ["payout.on_hold", "payout.pending_approval", "payout.approved"]


def test_who_may_read_and_decide_payouts(client, session, db, settings):
    shop = make_shop(session)
    partner, other = make_partner(session, name="P"), make_partner(session, name="Q")
    make_commission(session, offer=shop.offer, partner=partner, payout="50.00")
    make_commission(session, offer=shop.offer, partner=other, payout="70.00")
    mine, theirs = jobs.build(db, settings).built
    me = Api(client, make_key(session, role="partner", partner=partner))
    assert [p["id"] for p in me.get("/api/v1/payouts").json["items"]] == [mine]
    assert me.get(f"/api/v1/payouts/{mine}").json["amount"] == "50.00"
    assert me.get(f"/api/v1/payouts/{theirs}").status_code == 404
    assert me.post(f"/api/v1/payouts/{mine}/approve").status_code == 403
    assert me.post("/api/v1/payout-runs", json={}).status_code == 403
    brand = Api(client, make_key(session, role="brand", brand=shop.brand))
    assert brand.get("/api/v1/payouts").status_code == 403
    assert brand.get(f"/api/v1/payouts/{mine}").status_code == 404
    finance = Api(client, make_key(session, role="finance"))
    listed = finance.get("/api/v1/payouts?status=pending_approval").json["items"]
    assert [(p["id"], p["amount"], p["currency"]) for p in listed] == [(mine, "50.00", "USD"), (theirs, "70.00", "USD")]
    assert finance.get("/api/v1/payouts?status=nonsense").status_code in (400, 422)
    assert finance.get(f"/api/v1/payouts?partner_id={other.id}").json["items"][0]["id"] == theirs
    admin = Api(client, make_key(session, role="admin"))
    assert admin.post(f"/api/v1/payouts/{theirs}/cancel").json["status"] == "canceled"


def test_payout_runs_with_the_manual_gateway_export_a_csv(client, session, exports):
    shop = make_shop(session)
    partner = make_partner(session, name="=HYPERLINK(1)", email="ops@dealblog.example")
    make_commission(session, offer=shop.offer, partner=partner, payout="52.25")
    finance = Api(client, make_key(session, role="finance"))
    r = finance.post("/api/v1/payout-runs", json={})
    assert r.status_code == 201, r.json
    (built,) = r.json["payouts"]
    assert (built["status"], built["amount"], r.json["settled"]) == ("pending_approval", "52.25", [])
    assert finance.post(f"/api/v1/payouts/{built['id']}/approve").status_code == 200
    r = finance.post("/api/v1/payout-runs", json={})
    assert r.status_code == 201, r.json
    assert (r.json["payouts"], r.json["paid"], r.json["failed"], r.json["unknown"]) == ([], 1, 0, 0)
    (settled,) = r.json["settled"]
    assert (settled["id"], settled["status"], settled["reference"]) == (
        built["id"],
        "paid",
        f"manual:payout-{built['id']}",
    )
    assert r.json["export_url"] == f"/api/v1/payout-runs/{r.json['id']}/export"
    with finance.get(r.json["export_url"]) as download:
        assert download.status_code == 200 and download.mimetype == "text/csv"
        rows = list(csv.DictReader(download.get_data(as_text=True).splitlines()))
    assert [(row["payout_id"], row["partner_name"], row["amount"], row["currency"]) for row in rows] == [
        (str(built["id"]), "'=HYPERLINK(1)", "52.25", "USD")
    ]
    assert [p.name for p in exports.iterdir()] == [f"payouts-run-{r.json['id']}.csv"]  # kept on disk
    got = finance.get(f"/api/v1/payouts/{built['id']}").json
    assert (got["status"], got["batch_id"], got["paid_at"] is not None) == ("paid", r.json["id"], True)
    balance = finance.get(f"/api/v1/partners/{partner.id}/balance").json["items"][0]
    assert (balance["available"], balance["in_payout"], balance["paid"]) == ("0.00", "0.00", "52.25")
    check_invariants(session)


def test_stripe_onboarding_without_stripe_configured_is_a_conflict(client, session):
    partner = make_partner(session)
    r = Api(client, make_key(session, role="partner", partner=partner)).post(
        f"/api/v1/partners/{partner.id}/stripe/onboarding"
    )
    assert (r.status_code, r.json["code"]) == (409, "stripe_not_configured")
