"""Attribution beyond the click, end to end through real postbacks: customers, recurring terms, coupons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event, select

from network.auth import Principal, Role
from network.conversions.schemas import dump_conversion
from network.customers.models import Customer, CustomerCount
from network.deliveries.service import macro_values
from network.payouts.models import AuditLog
from tests.conversions.conftest import (
    CPL,
    NOW,
    REVSHARE,
    conversions,
    log_lines,
    make_click,
    make_link,
    make_shop,
    postback,
)
from tests.factories import Api, make_key, make_partner
from tests.portal.conftest import make_user, sign_in

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
RENEWAL = {"key": "renewal", "model": "revshare", "payout_percent": "20", "revenue_percent": "30"}


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def _shop(session, client, **renewal: Any):
    return make_shop(session, client, events=[REVSHARE, {**RENEWAL, **renewal}, CPL])


def _bind(client, session, shop, customer: str = "cus_1", txn: str = "S-1") -> Any:
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, event="sale", amount="100.00", txn_id=txn, customer_id=customer,
                 token=shop.token)  # fmt: skip
    assert r.status_code == 200 and r.json["status"] == "approved", r.json
    return r.json


def _renew(client, shop, txn: str, customer: str = "cus_1", **params: Any) -> Any:
    return postback(client, event="renewal", amount="50.00", txn_id=txn, customer_id=customer, token=shop.token,
                    **params)  # fmt: skip


# ---- customers --------------------------------------------------------------------------------------


def test_a_first_conversion_binds_its_customer_and_renewals_without_a_click_go_to_its_partner(client, session):
    shop = _shop(session, client)
    first = _bind(client, session, shop)
    (binding,) = session.scalars(select(Customer)).all()
    assert (binding.customer_id, binding.partner_id, binding.link_id, binding.offer_id, binding.conversion_id) == (
        "cus_1",
        shop.partner.id,
        shop.link.id,
        shop.offer.id,
        first["conversion_id"],
    )
    r = _renew(client, shop, "R-1")
    assert r.status_code == 200 and r.json["status"] == "approved" and r.json["reason"] is None
    renewal = conversions(session, id=r.json["conversion_id"])[0]
    assert (renewal.partner_id, renewal.link_id, renewal.attributed_by, renewal.customer_id) == (
        shop.partner.id,
        shop.link.id,
        "customer",
        "cus_1",
    )
    assert (renewal.click_id, renewal.clicked_at) == (None, None)
    assert renewal.payout_minor == 1000 and renewal.revenue_minor == 1500  # 20 % / 30 % of 50.00
    # The API shows how each was attributed; partners see their own.
    out = shop.partner_api.get(f"/api/v1/conversions/{renewal.id}").json
    assert (out["attributed_by"], out["customer_id"], out["click_id"]) == ("customer", "cus_1", None)
    out = shop.brand_api.get(f"/api/v1/conversions/{first['conversion_id']}").json
    assert (out["attributed_by"], out["customer_id"], out["coupon"]) == ("click", "cus_1", None)
    # A replay is a duplicate, as a click's.
    again = _renew(client, shop, "R-1")
    assert again.json == {**r.json, "duplicate": True}


def test_the_window_does_not_apply_to_a_customers_renewal_but_the_offer_and_caps_do(client, session, frozen_clock):
    shop = _shop(
        session,
        client,
    )
    _bind(client, session, shop)
    frozen_clock(NOW + 400 * DAY)  # far past the 30-day window
    assert _renew(client, shop, "R-1").json["status"] == "approved"
    shop.brand_api.post(f"/api/v1/offers/{shop.offer.id}/pause")
    assert _renew(client, shop, "R-2").json["reason"] == "offer_inactive"


def test_a_second_click_of_another_partner_does_not_rebind_the_customer(client, session):
    shop = _shop(session, client)
    _bind(client, session, shop)
    other = make_partner(session, name="Other")
    link = make_link(session, offer=shop.offer, partner=other)
    click = make_click(session, link, at=NOW - HOUR)
    r = postback(client, click_id=click, event="sale", amount="10.00", txn_id="S-2", customer_id="cus_1",
                 token=shop.token)  # fmt: skip
    assert conversions(session, id=r.json["conversion_id"])[0].partner_id == other.id  # the click wins
    assert session.scalars(select(Customer.partner_id)).all() == [shop.partner.id]  # the first binding stays
    assert conversions(session, id=_renew(client, shop, "R-1").json["conversion_id"])[0].partner_id == shop.partner.id


def test_a_rejected_first_conversion_binds_nobody(client, session):
    shop = _shop(session, client)
    click = make_click(session, shop.link, at=NOW - 40 * DAY)
    r = postback(client, click_id=click, event="sale", amount="1.00", txn_id="S-1", customer_id="c", token=shop.token)
    assert r.json["reason"] == "out_of_window"
    assert session.scalars(select(Customer)).all() == []


def test_an_unknown_customer_without_a_click_is_rejected_with_its_reason_and_logged(client, session):
    shop = _shop(session, client)
    r = _renew(client, shop, "R-1", customer="nobody")
    assert r.status_code == 200
    assert r.json == {"conversion_id": None, "status": "rejected", "reason": "unknown_customer", "duplicate": False}
    assert conversions(session) == []
    assert (log_lines(session)[-1].brand_id, log_lines(session)[-1].reason) == (shop.brand.id, "unknown_customer")


def test_a_customers_conversion_names_its_offer_or_none(client, session):
    shop = _shop(session, client)
    _bind(client, session, shop)
    other = make_shop(session, client, name="Other shop")
    assert _renew(client, shop, "R-1", offer_id=other.offer.id).status_code == 403  # another brand's offer
    assert _renew(client, shop, "R-2", offer_id=shop.offer.id).json["status"] == "approved"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"customer_id": "cus\x00"}, "customer_id"),
        ({"customer_id": "x" * 256}, "customer_id"),
        ({"coupon": "A\x07"}, "coupon"),
        ({"coupon": "C" * 65}, "coupon"),
        ({"txn_id": None}, "txn_id"),
    ],
)
def test_bad_customer_and_coupon_parameters_are_400_naming_the_field(client, session, params, field):
    shop = _shop(session, client)
    query = {"event": "renewal", "amount": "5.00", "txn_id": "R-1", "customer_id": "c", "token": shop.token, **params}
    r = postback(client, **query)
    assert r.status_code == 400 and field in r.json["errors"], r.json


def test_first_n_conversions_count_the_binding_one_and_end_with_recurring_ended(client, session):
    shop = make_shop(session, client, events=[{**REVSHARE, "recurring_conversions": 3}, CPL])
    _bind(client, session, shop)  # 1 of 3
    answers = [postback(client, event="sale", amount="10.00", txn_id=f"S-{n}", customer_id="cus_1",
                        token=shop.token).json for n in (2, 3, 4)]  # fmt: skip
    assert [(a["status"], a["reason"]) for a in answers] == [
        ("approved", None),
        ("approved", None),
        ("rejected", "recurring_ended"),
    ]
    assert session.scalars(select(CustomerCount.used)).all() == [3]


def test_first_n_conversions_per_event(client, session):
    shop = _shop(session, client, recurring_conversions=2)
    _bind(client, session, shop)  # a sale: not a renewal
    reasons = [_renew(client, shop, f"R-{n}").json["reason"] for n in range(3)]
    assert reasons == [None, None, "recurring_ended"]


def test_a_turn_taken_by_a_conversion_the_caps_reject_is_given_back(client, session):
    shop = make_shop(session, client, events=[REVSHARE, {**RENEWAL, "recurring_conversions": 2}],
                     caps=[{"metric": "conversions", "period": "day", "limit": 1}])  # fmt: skip
    _bind(client, session, shop)
    assert _renew(client, shop, "R-1").json["reason"] == "cap_reached"  # the sale took the day's room
    assert session.scalars(select(CustomerCount.used)).all() == [0]


def test_n_months_from_the_binding(client, session, frozen_clock):
    shop = _shop(session, client, recurring_months=12)
    _bind(client, session, shop)
    frozen_clock(NOW + 364 * DAY)
    assert _renew(client, shop, "R-1").json["status"] == "approved"
    frozen_clock(NOW + 366 * DAY)
    r = _renew(client, shop, "R-2")
    assert (r.json["status"], r.json["reason"]) == ("rejected", "recurring_ended")
    assert conversions(session, id=r.json["conversion_id"])[0].payout_minor == 0


def test_recurring_terms_are_part_of_the_offers_events(session, client):
    shop = _shop(session, client, recurring_months=12)
    events = shop.brand_api.get(f"/api/v1/offers/{shop.offer.id}").json["events"]
    assert events[1]["recurring_months"] == 12 and "recurring_months" not in events[0]
    r = shop.brand_api.patch(f"/api/v1/offers/{shop.offer.id}", json={"events": [
        REVSHARE, {**RENEWAL, "recurring_months": 1, "recurring_conversions": 2}, CPL]})  # fmt: skip
    assert r.status_code == 400 and "events" in r.json["errors"]


# ---- moving and unbinding ---------------------------------------------------------------------------


def test_a_brand_moves_a_customer_and_later_renewals_go_to_the_new_partner_audited(client, session):
    shop = _shop(session, client)
    _bind(client, session, shop)
    other = make_partner(session, name="Other")
    (customer,) = shop.brand_api.get("/api/v1/customers").json["items"]
    r = shop.brand_api.post(f"/api/v1/customers/{customer['id']}/move", json={"partner_id": other.id})
    assert r.status_code == 200 and r.json["partner_id"] == other.id and r.json["moved_at"] is not None
    renewal = conversions(session, id=_renew(client, shop, "R-1").json["conversion_id"])[0]
    assert renewal.partner_id == other.id and renewal.link_id == r.json["link_id"]
    audit = session.scalars(select(AuditLog).where(AuditLog.object_type == "customer")).all()
    assert [(a.action, a.details["from_partner_id"], a.details["to_partner_id"]) for a in audit] == [
        ("customer.moved", shop.partner.id, other.id)
    ]
    # Partners see their own customers only.
    other_api = Api(client, make_key(session, role="partner", partner=other))
    assert [c["id"] for c in other_api.get("/api/v1/customers").json["items"]] == [customer["id"]]
    assert shop.partner_api.get("/api/v1/customers").json["items"] == []
    assert shop.partner_api.get(f"/api/v1/customers/{customer['id']}").status_code == 404
    assert shop.partner_api.post(f"/api/v1/customers/{customer['id']}/move",
                                 json={"partner_id": shop.partner.id}).status_code == 403  # fmt: skip


def test_unbinding_a_customer_stops_its_renewals_and_is_audited(client, session):
    shop = _shop(session, client)
    _bind(client, session, shop)
    (customer,) = shop.brand_api.get("/api/v1/customers").json["items"]
    other = make_shop(session, client, name="Other shop")
    assert other.brand_api.delete(f"/api/v1/customers/{customer['id']}").status_code == 404
    assert shop.brand_api.delete(f"/api/v1/customers/{customer['id']}").status_code == 204
    assert _renew(client, shop, "R-1").json["reason"] == "unknown_customer"
    assert session.scalars(select(AuditLog.action).where(AuditLog.object_type == "customer")).all() == [
        "customer.unbound"
    ]


# ---- coupons ----------------------------------------------------------------------------------------


def _coupon(shop, partner_id: int, code: str = "SPRING10") -> Any:
    r = shop.brand_api.post("/api/v1/coupons", json={"offer_id": shop.offer.id, "partner_id": partner_id, "code": code})
    assert r.status_code == 201, r.json
    return r.json


def test_a_coupon_without_a_click_attributes_to_its_partner_in_any_case(client, session):
    shop = _shop(session, client)
    coupon = _coupon(shop, shop.partner.id)
    r = postback(client, coupon="spring10", event="sale", amount="80.00", txn_id="O-1", token=shop.token)
    assert r.json["status"] == "approved", r.json
    (c,) = conversions(session)
    assert (c.partner_id, c.link_id, c.attributed_by, c.coupon, c.click_id) == (
        shop.partner.id,
        coupon["link_id"],
        "coupon",
        "SPRING10",
        None,
    )
    assert c.payout_minor == 800
    r = postback(client, coupon="NOPE", event="sale", amount="80.00", txn_id="O-2", token=shop.token)
    assert r.json == {"conversion_id": None, "status": "rejected", "reason": "unknown_coupon", "duplicate": False}


def test_coupon_codes_are_unique_per_brand_whatever_the_case_and_partners_see_their_own(client, session):
    shop = _shop(session, client)
    _coupon(shop, shop.partner.id)
    r = shop.brand_api.post("/api/v1/coupons", json={"offer_id": shop.offer.id, "partner_id": shop.partner.id,
                                                     "code": "Spring10"})  # fmt: skip
    assert r.status_code == 409 and r.json["code"] == "coupon_taken"
    r = shop.brand_api.post("/api/v1/coupons", json={"offer_id": shop.offer.id, "partner_id": shop.partner.id,
                                                     "code": "10 % off"})  # fmt: skip
    assert r.status_code == 400 and "code" in r.json["errors"]
    other = make_shop(session, client, name="Other shop")
    _coupon(other, other.partner.id)  # another brand may have the same code
    assert [c["code"] for c in shop.partner_api.get("/api/v1/coupons").json["items"]] == ["SPRING10"]
    assert len(shop.admin_api.get("/api/v1/coupons").json["items"]) == 2
    r = other.brand_api.post("/api/v1/coupons", json={"offer_id": shop.offer.id, "partner_id": other.partner.id,
                                                      "code": "MINE"})  # fmt: skip
    assert r.status_code == 404  # another brand's offer
    assert shop.partner_api.post("/api/v1/coupons", json={"offer_id": shop.offer.id, "partner_id": shop.partner.id,
                                                          "code": "SELF"}).status_code == 403  # fmt: skip


@pytest.mark.parametrize(("rule", "winner"), [("click", "click"), ("coupon", "coupon")])
def test_a_click_and_another_partners_coupon_the_offers_rule_decides_and_both_are_recorded(
    client, session, rule, winner
):
    shop = _shop(session, client)
    if rule != "click":
        assert shop.brand_api.patch(f"/api/v1/offers/{shop.offer.id}", json={"coupon_rule": rule}).status_code == 200
    other = make_partner(session, name="Coupon site")
    coupon = _coupon(shop, other.id)
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, coupon="SPRING10", event="sale", amount="10.00", txn_id="O-1",
                 token=shop.token)  # fmt: skip
    assert r.json["status"] == "approved", r.json
    (c,) = conversions(session)
    assert (c.click_id, c.coupon, c.attributed_by) == (click, "SPRING10", winner)
    expected = (shop.partner.id, shop.link.id) if winner == "click" else (other.id, coupon["link_id"])
    assert (c.partner_id, c.link_id) == expected
    # The winner sees its own: not the other partner's click (or its sub ids), nor its coupon.
    seen = dump_conversion(c, Principal(Role.PARTNER, key_id=1, partner_id=c.partner_id), event_key="sale")
    assert (seen["click_id"] is not None, seen["coupon"]) == (
        (True, None) if winner == "click" else (False, "SPRING10")
    )
    assert macro_values(session, c, "approved")[0]["click_id"] == (click if winner == "click" else "")


def test_a_coupon_conversion_passes_caps_and_hold(client, session):
    shop = make_shop(session, client, events=[REVSHARE], hold_days=3,
                     caps=[{"metric": "conversions", "period": "day", "limit": 1}])  # fmt: skip
    _coupon(shop, shop.partner.id)
    first = postback(client, coupon="SPRING10", event="sale", amount="8.00", txn_id="O-1", token=shop.token).json
    second = postback(client, coupon="SPRING10", event="sale", amount="8.00", txn_id="O-2", token=shop.token).json
    assert (first["status"], second["reason"]) == ("pending", "cap_reached")


def test_a_coupons_first_conversion_binds_its_customer(client, session):
    shop = _shop(session, client)
    _coupon(shop, shop.partner.id)
    r = postback(client, coupon="SPRING10", customer_id="cus_9", event="sale", amount="8.00", txn_id="O-1",
                 token=shop.token)  # fmt: skip
    assert r.json["status"] == "approved"
    assert (
        conversions(session, id=_renew(client, shop, "R-1", customer="cus_9").json["conversion_id"])[0].attributed_by
        == "customer"
    )


def test_a_deleted_coupon_attributes_nothing_and_its_conversions_keep_the_code(client, session):
    shop = _shop(session, client)
    coupon = _coupon(shop, shop.partner.id)
    postback(client, coupon="SPRING10", event="sale", amount="8.00", txn_id="O-1", token=shop.token)
    assert shop.partner_api.delete(f"/api/v1/coupons/{coupon['id']}").status_code == 403
    assert shop.brand_api.delete(f"/api/v1/coupons/{coupon['id']}").status_code == 204
    r = postback(client, coupon="SPRING10", event="sale", amount="8.00", txn_id="O-2", token=shop.token)
    assert r.json["reason"] == "unknown_coupon"
    assert [c.coupon for c in conversions(session)] == ["SPRING10"]


# ---- the click path pays nothing for customers and coupons ------------------------------------------


@pytest.fixture
def statements(engine):
    """Every statement SQLAlchemy sends during the test (the driver-level fast path aside)."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    yield seen
    event.remove(engine, "before_cursor_execute", before)


def test_a_postback_with_a_click_and_no_customer_or_coupon_reads_and_writes_nothing_of_them(
    client, session, statements
):
    shop = _shop(session, client)
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, event="sale", amount="10.00", txn_id="S-1", token=shop.token)
    assert r.json["status"] == "approved"
    mine = ("customers", "customer_counts", "coupons")
    assert not [s for s in statements if any(f" {table}" in s for table in mine)]
    _bind(client, session, shop, txn="S-2")
    assert [s for s in statements if "INSERT INTO customers" in s]


def test_a_coupon_conversion_is_undone_by_its_txn_id_and_shown_on_the_brands_page(client, session, app):
    shop = _shop(session, client)
    _coupon(shop, shop.partner.id)
    r = postback(client, coupon="SPRING10", customer_id="cus_7", event="sale", amount="8.00", txn_id="O-1",
                 token=shop.token)  # fmt: skip
    undo = postback(client, status="reversed", txn_id="O-1", token=shop.token).json
    assert (undo["conversion_id"], undo["status"]) == (r.json["conversion_id"], "reversed")
    make_user(session, email="brand@shop.example", role="brand", brand_id=shop.brand.id)
    browser = app.test_client()
    assert sign_in(browser, "brand@shop.example").status_code == 302
    page = browser.get(f"/brand/conversions/{r.json['conversion_id']}").get_data(as_text=True)
    assert "coupon <code>SPRING10</code>" in page and "customer <code>cus_7</code>" in page


def test_a_pixel_never_binds_a_customer(client, session):
    shop = _shop(session, client)
    click = make_click(session, shop.link, at=NOW - HOUR)
    client.set_cookie("network_click", click)
    r = client.get("/pixel", query_string={"offer_id": shop.offer.id, "event": "sale", "amount": "5.00",
                                           "txn_id": "P-1", "customer_id": "cus_1"})  # fmt: skip
    assert r.status_code == 200
    (c,) = conversions(session)
    assert (c.status, c.customer_id) == ("pending", "cus_1")  # held for review, as every pixel's
    assert session.scalars(select(Customer)).all() == []
