"""Input the database cannot hold is 400 (never a 500), and every postback still leaves its log line."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from network.conversions.signals import status_changed
from network.db import make_engine
from tests.conversions.conftest import CPL, NOW, conversions, log_lines, make_click, make_shop, postback

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)
HUGE = 2**31  # one past PostgreSQL's INTEGER
HUGER = 2**70  # past SQLite's (and Python's sqlite3) 64-bit integers


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offer_id": str(HUGE)}, "offer_id"),
        ({"offer_id": str(HUGER)}, "offer_id"),
        ({"offer_id": "0"}, "offer_id"),
        ({"txn_id": "A\x00B"}, "txn_id"),
        ({"event": "lead\x00"}, "event"),
        ({"txn_id": "line\nbreak"}, "txn_id"),
        ({"currency": "US\x00"}, "currency"),
        ({"reason": "x\x7f", "status": "rejected", "txn_id": "T"}, "reason"),
    ],
)
def test_values_the_database_cannot_hold_are_400_naming_the_field(client, session, shop, params, field):
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, **{"click_id": click, "event": "lead", "token": shop.token, **params})
    assert r.status_code == 400, r.json
    assert field in r.json["errors"] and field in r.json["message"]
    assert conversions(session) == []
    assert [line.http_status for line in log_lines(session)] == [400]


def test_a_nul_in_the_click_id_or_an_unknown_parameter_is_still_logged(client, session, shop):
    r = postback(client, click_id="abc\x00def", event="lead", token=shop.token)
    assert r.status_code == 400 and "click_id" in r.json["errors"]
    r = client.get(f"/postback?click_id=x&token={shop.token}&note%00=a%00b")
    assert r.status_code == 200 and r.json["reason"] == "unknown_click"
    # A pixel whose cookie carries a NUL: a GIF, and a log line with the NUL replaced.
    client.set_cookie("network_click", "abc\x00def")
    assert client.get(f"/pixel?offer_id={shop.offer.id}").status_code == 200
    lines = log_lines(session)
    assert [(line.http_status, line.reason) for line in lines] == [
        (400, "click_id must not contain control characters"), (200, "unknown_click"), (200, "unknown_click"),
    ]  # fmt: skip
    assert lines[1].params["note\ufffd"] == "a\ufffdb"
    assert lines[2].click_id == "abc\ufffddef"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"/api/v1/offers/{HUGE}", None),
        ("get", f"/api/v1/offers/{HUGER}", None),
        ("get", f"/api/v1/conversions/{HUGE}", None),
        ("get", f"/api/v1/conversions/{HUGER}", None),
        ("post", f"/api/v1/conversions/{HUGE}/status", {"status": "approved"}),
        ("get", f"/api/v1/conversions?offer_id={HUGE}", None),
        ("get", f"/api/v1/conversions?partner_id={HUGER}", None),
        ("get", f"/api/v1/conversions?after={HUGER}", None),
        ("get", f"/api/v1/postback-log?offer_id={HUGE}", None),
        ("get", f"/api/v1/postback-log?http_status={HUGER}", None),
        ("get", f"/api/v1/postback-log?txn_id={quote(chr(0))}", None),
        ("get", f"/api/v1/reports?from=2026-03-01&to=2026-03-02&offset={HUGER}", None),
        ("put", "/api/v1/offers/{offer}/overrides", {"partner_id": HUGE, "event": "lead", "payout": "1.00"}),
        ("put", "/api/v1/offers/{offer}/overrides", {"partner_id": HUGER, "event": "lead", "payout": "1.00"}),
    ],
)
def test_ids_out_of_integer_range_are_400_not_500(client, session, method, path, body):
    shop = make_shop(session, client, events=[CPL])
    r = getattr(shop.admin_api, method)(path.format(offer=shop.offer.id), json=body)
    assert r.status_code in (400, 404), (r.status_code, r.json)
    assert r.json["code"] in ("validation_error", "not_found")
    # A generic message: never the statement or its parameters.
    assert "SELECT" not in r.json["message"].upper() and str(HUGER) not in r.json["message"]


def test_a_cap_limit_out_of_range_is_400(client, session):
    shop = make_shop(session, client, events=[CPL])
    caps = [{"metric": "conversions", "period": "day", "limit": HUGER}]  # past a 64-bit column
    r = shop.admin_api.patch(f"/api/v1/offers/{shop.offer.id}", json={"caps": caps})
    assert r.status_code == 400, (r.status_code, r.json)


@pytest.mark.breaks_batches
def test_an_unexpected_failure_is_500_and_still_logged(client, session, shop):
    def explode(_sender: Any, **_kwargs: Any) -> None:
        raise RuntimeError("a receiver broke")

    click = make_click(session, shop.link, at=NOW - HOUR)
    status_changed.connect(explode)
    try:
        r = postback(client, click_id=click, event="lead", txn_id="E-1", token=shop.token)
        client.set_cookie("network_click", click)
        pixel = client.get(f"/pixel?offer_id={shop.offer.id}&event=lead&txn_id=E-2")
    finally:
        status_changed.disconnect(explode)
    assert r.status_code == 500 and r.json == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": r.headers["X-Request-ID"],
    }
    assert pixel.status_code == 200 and pixel.mimetype == "image/gif"
    assert conversions(session) == []
    assert [(line.http_status, line.txn_id, line.brand_id, line.conversion_id) for line in log_lines(session)] == [
        (500, "E-1", shop.brand.id, None), (500, "E-2", shop.brand.id, None),
    ]  # fmt: skip
    # The request after it works.
    assert postback(client, click_id=click, event="lead", txn_id="E-1", token=shop.token).json["status"] == "approved"


def test_database_errors_never_carry_their_parameters(database_url, dialect):
    # SQLite: a database of its own (the test's transaction holds the shared file's write lock).
    engine = make_engine(database_url if dialect == "postgresql" else "sqlite://")
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(text("SELECT :token FROM no_such_table"), {"token": "pbt_secret_value"})
    finally:
        engine.dispose()
    assert "pbt_secret_value" not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_a_body_too_large_to_read_is_413_and_still_logged(client, session, shop):
    r = client.post(f"/postback?token={shop.token}", data={"click_id": "x" * (1024 * 1024 + 1)})
    assert r.status_code == 413
    (line,) = log_lines(session)
    assert (line.http_status, line.reason, line.method) == (413, "Request Entity Too Large", "POST")
    assert "token" not in line.params
