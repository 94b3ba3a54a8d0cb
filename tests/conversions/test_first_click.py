"""First-click attribution: through real postbacks, the visitor's earliest click on the offer in the window."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conversions.conftest import CPL, NOW, conversions, make_click, make_link, make_shop, postback
from tests.factories import make_partner

HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


@pytest.fixture
def two(session, client):
    """A first_click offer with two partners' links; returns (shop, other partner's link)."""
    shop = make_shop(session, client, events=[CPL], attribution="first_click")
    other = make_link(session, offer=shop.offer, partner=make_partner(session, name="Coupon Site"))
    return shop, other


def test_the_visitors_earliest_click_on_the_offer_takes_the_conversion(client, session, two):
    shop, other = two
    first = make_click(session, other, at=NOW - 3 * HOUR, visitor="v1")
    make_click(session, shop.link, at=NOW - 2 * HOUR, visitor="v1")
    named = make_click(session, shop.link, at=NOW - HOUR, visitor="v1")
    r = postback(client, click_id=named, token=shop.token, txn_id="T1").json
    assert r["status"] == "approved", r
    (row,) = conversions(session)
    assert (row.click_id, row.link_id, row.partner_id) == (first, other.id, other.partner_id)
    assert row.clicked_at == NOW - 3 * HOUR


def test_a_refund_naming_the_click_the_brand_sent_reverses_the_first_clicks_conversion(client, session, two):
    shop, other = two
    make_click(session, other, at=NOW - 3 * HOUR, visitor="v1")
    named = make_click(session, shop.link, at=NOW - HOUR, visitor="v1")
    assert postback(client, click_id=named, token=shop.token, txn_id="T9").json["status"] == "approved"
    r = postback(client, click_id=named, token=shop.token, txn_id="T9", status="reversed").json
    assert (r["status"], r["duplicate"]) == ("reversed", False), r
    (row,) = conversions(session)
    assert row.status == "reversed"


@pytest.mark.parametrize(
    "earlier",
    [
        {"visitor": "v2", "at": NOW - 3 * HOUR},  # another visitor
        {"visitor": "v1", "at": NOW - 31 * DAY},  # before the window (30 days)
        {"visitor": "v1", "at": NOW - 3 * HOUR, "is_bot": True},  # a bot's click is never attributed
    ],
)
def test_clicks_of_others_outside_the_window_or_of_bots_do_not_take_it(client, session, two, earlier):
    shop, other = two
    make_click(session, other, **earlier)
    named = make_click(session, shop.link, at=NOW - HOUR, visitor="v1")
    assert postback(client, click_id=named, token=shop.token).json["status"] == "approved"
    (row,) = conversions(session)
    assert (row.click_id, row.partner_id) == (named, shop.partner.id)


def test_a_last_click_offer_keeps_the_named_click(client, session):
    shop = make_shop(session, client, events=[CPL])
    other = make_link(session, offer=shop.offer, partner=make_partner(session, name="Coupon Site"))
    make_click(session, other, at=NOW - 3 * HOUR, visitor="v1")
    named = make_click(session, shop.link, at=NOW - HOUR, visitor="v1")
    postback(client, click_id=named, token=shop.token)
    (row,) = conversions(session)
    assert (row.click_id, row.partner_id) == (named, shop.partner.id)


def test_a_named_click_without_a_row_keeps_the_conversion_and_the_log_keeps_the_id_received(client, session, two):
    shop, other = two
    make_click(session, other, at=NOW - 3 * HOUR, visitor="v1")
    named = make_click(None, shop.link, at=NOW - HOUR)  # not written (another process's buffer)
    assert postback(client, click_id=named, token=shop.token).json["status"] == "approved"
    (row,) = conversions(session)
    assert row.click_id == named


def test_two_postbacks_naming_two_clicks_of_one_visitor_are_one_conversion_per_event(client, session, two):
    shop, other = two
    first = make_click(session, other, at=NOW - 3 * HOUR, visitor="v1")
    a = make_click(session, shop.link, at=NOW - 2 * HOUR, visitor="v1")
    b = make_click(session, shop.link, at=NOW - HOUR, visitor="v1")
    one = postback(client, click_id=a, token=shop.token).json
    two_ = postback(client, click_id=b, token=shop.token).json
    assert two_["duplicate"] is True and two_["conversion_id"] == one["conversion_id"]
    (row,) = conversions(session)
    assert row.click_id == first


def _plan(session, statement, params) -> str:
    """Return the database's plan of a statement, as text (index scans only where they can serve)."""
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect)
    processed = compiled.construct_params(params)
    binds = {name: compiled.binds[name].type.dialect_impl(connection.dialect).bind_processor(connection.dialect)
             for name in processed}  # fmt: skip
    values = {name: (binds[name](value) if binds[name] else value) for name, value in processed.items()}
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        rows = connection.exec_driver_sql(f"EXPLAIN {compiled.string}", values).all()
    else:
        ordered = tuple(values[name] for name in compiled.positiontup or ())
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled.string}", ordered).all()
    return "\n".join(" ".join(str(part) for part in row) for row in rows)


@pytest.mark.parametrize("statement", ["_BY_NAMED", "_BY_VISITOR"])
def test_the_first_click_query_reads_the_visitor_index(session, statement):
    from network.conversions import firstclick

    params = {"click_id": "x", "low": NOW - HOUR, "high": NOW, "since": NOW - 30 * DAY, "offer_id": 1,
              "visitor": "v1", "before": NOW}  # fmt: skip
    plan = _plan(session, getattr(firstclick, statement), params)
    # PostgreSQL names each partition's copy of the index after its column.
    assert "ix_clicks_visitor" in plan or "_visitor_idx" in plan, plan
