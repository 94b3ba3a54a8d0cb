"""Brand postbacks over HTTP: authentication, the pipeline's verdicts, dedupe, amounts (RELIABILITY 5-8, 10, 11)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from urllib.parse import urlencode

import pytest
from sqlalchemy import String, bindparam, select, text

from network import money
from network.conversions import service
from network.conversions.models import ConversionHistory
from network.conversions.service import sign
from network.db import Raw
from network.offers.models import OfferAccess
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Click
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
from tests.factories import make_partner

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


# ---- RELIABILITY 5: authentication ---------------------------------------------------------------


def _signed_get(client, token: str, params: dict, *, at: int | None = None, tamper: str = ""):
    query = urlencode(params)
    at = int(NOW.timestamp()) if at is None else at
    return client.get(f"/postback?{query}{tamper}", headers={"X-Signature": sign(token, query.encode(), at)})


def test_valid_token_and_valid_signatures_are_accepted(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, event="lead", token=shop.token)
    assert r.status_code == 200 and r.json["status"] == "approved"

    click2 = make_click(session, shop.link, at=NOW - HOUR)
    r = _signed_get(client, shop.token, {"click_id": click2, "event": "lead"})
    assert r.status_code == 200 and r.json["status"] == "approved"

    click3 = make_click(session, shop.link, at=NOW - HOUR)
    body = json.dumps({"click_id": click3, "event": "sale", "amount": 80.00, "txn_id": "J-1"}).encode()
    r = client.post(
        "/postback",
        data=body,
        content_type="application/json",
        headers={"X-Signature": sign(shop.token, body, int(NOW.timestamp()) - 299)},
    )
    assert r.status_code == 200, r.json
    assert r.json["status"] == "approved"
    assert conversions(session, id=r.json["conversion_id"])[0].amount_minor == 8000

    click4 = make_click(session, shop.link, at=NOW - HOUR)
    r = client.post("/postback", data={"click_id": click4, "event": "lead", "token": shop.token})
    assert r.status_code == 200 and r.json["status"] == "approved"
    assert len(conversions(session)) == 4


def test_unauthenticated_postbacks_are_403_and_only_logged(client, session, shop, caplog):
    other = make_shop(session, client, name="Other Brand", events=[CPL])
    click = make_click(session, shop.link, at=NOW - HOUR)
    params = {"click_id": click, "event": "lead"}
    ts = int(NOW.timestamp())
    caplog.set_level(logging.DEBUG)
    attempts = [
        postback(client, **params),  # no token
        postback(client, **params, token="pbt_wrong"),
        postback(client, **params, offer_id=shop.offer.id, token=other.token),  # another brand's token
        _signed_get(client, other.token, params),  # signed by another brand
        _signed_get(client, shop.token, params, tamper="&amount=1"),  # body changed after signing
        _signed_get(client, shop.token, params, at=ts - 301),  # stale
        _signed_get(client, shop.token, params, at=ts + 301),  # from the future
        client.get(f"/postback?{urlencode(params)}", headers={"X-Signature": f"t={ts},v1=00"}),
        client.get(f"/postback?{urlencode(params)}", headers={"X-Signature": "garbage"}),
        # A time no clock can hold (once a 500: OverflowError), and one a few digits too long.
        client.get(f"/postback?{urlencode(params)}", headers={"X-Signature": f"t={'9' * 400},v1=00"}),
        client.get(f"/postback?{urlencode(params)}", headers={"X-Signature": sign(shop.token, b"", 10**12)}),
        # A signed POST whose query string (not covered by the signature) adds parameters.
        client.post(
            "/postback?event=sale",
            data=(body := urlencode({"click_id": click, "amount": "1.00"}).encode()),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Signature": sign(shop.token, body, ts)},
        ),
        # Unknown click with another brand's offer id: that brand's token is needed.
        postback(client, click_id="forged", offer_id=shop.offer.id, token=other.token),
    ]
    for r in attempts:
        assert r.status_code == 403, r.json
        assert r.json["code"] == "forbidden"
    assert conversions(session) == []
    lines = log_lines(session)
    assert [line.http_status for line in lines] == [403] * len(attempts)
    assert all(line.conversion_id is None for line in lines)
    # Nobody authenticated them, so no brand's log shows them (only the admin's): a wrong token may
    # be another brand's, whose parameters the click's brand must not read.
    assert {line.brand_id for line in lines} == {None}
    # No token or signature is kept anywhere: not in the log table, not in the app's logs.
    for line in lines:
        stored = json.dumps(line.params) + repr(line.reason)
        assert "token" not in line.params
        assert shop.token not in stored and other.token not in stored
    for secret in (shop.token, other.token, "pbt_wrong"):
        assert secret not in caplog.text


def test_access_log_lines_have_tokens_redacted():
    from network.conversions.api import RedactTokens

    record = logging.LogRecord(
        "werkzeug",
        logging.INFO,
        __file__,
        1,
        '%s - - "%s" %s',
        ("1.2.3.4", "GET /postback?a=1&token=pbt_x&b=2", 200),
        None,
    )
    assert RedactTokens().filter(record)
    assert "pbt_x" not in record.getMessage() and "token=[redacted]&b=2" in record.getMessage()


@pytest.mark.parametrize(
    "query",
    [
        "a=1&%74oken=pbt_x&b=2",  # the app decodes the name: it is the token
        "a=1&%74%6F%6B%65%6E=pbt_x",
        "TOKEN=pbt_x",
        "a=1&tok%65n=pbt_x&token=pbt_x",
        "token=pbt_x;b=2",  # a semicolon is no separator: all of it is the token
    ],
)
def test_access_log_redaction_reads_names_as_the_app_does(client, session, shop, query):
    from network.conversions.api import RedactTokens

    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, '%s "%s" %s', ("1.2.3.4", f"GET /postback?{query} HTTP/1.1", 200),
        None,
    )  # fmt: skip
    assert RedactTokens().filter(record)
    assert "pbt_x" not in record.getMessage() and "HTTP/1.1" in record.getMessage()
    # What the app reads as the token under such a name is the token (so it must be redacted).
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = client.get(f"/postback?click_id={click}&event=lead&%74oken={shop.token}")
    assert r.status_code == 200 and r.json["status"] == "approved"


# ---- RELIABILITY 6: unknown and foreign clicks ---------------------------------------------------


def test_unknown_and_foreign_clicks_are_rejected_unknown_click(client, session, shop):
    other = make_shop(session, client, name="Other Brand", events=[CPL])
    theirs = make_click(session, other.link, at=NOW - HOUR)
    foreign_network = ClickIdCodec("another-network").issue(shop.link.id, NOW - HOUR)
    mine = make_click(session, shop.link, at=NOW - HOUR)
    tampered = mine[:-2] + ("AA" if mine[-2:] != "AA" else "BB")
    unknown_link = ClickIdCodec("test-secret-key").issue(999_999, NOW - HOUR)
    cases = [
        {"click_id": "not-a-click-id"},
        {"click_id": foreign_network},
        {"click_id": tampered},
        {"click_id": unknown_link},
        # A click of another brand's offer, posted for our own offer, or for no offer in particular.
        {"click_id": theirs, "offer_id": shop.offer.id},
        {"click_id": theirs},
    ]
    for params in cases:
        r = postback(client, **params, event="lead", token=shop.token)
        assert r.status_code == 200, (params, r.json)
        assert r.json == {"conversion_id": None, "status": "rejected", "reason": "unknown_click", "duplicate": False}
    assert conversions(session) == []
    lines = log_lines(session)
    # Each in the log of the brand whose token it carried, never in the click's brand's.
    assert [(line.http_status, line.reason, line.brand_id) for line in lines] == [
        (200, "unknown_click", shop.brand.id)
    ] * len(cases)
    assert lines[1].click_id == foreign_network
    assert other.brand_api.get("/api/v1/postback-log").json["items"] == []
    # Undoing by txn_id with our token on their click looks among our conversions only.
    r = postback(client, click_id=theirs, txn_id="T-1", status="reversed", token=shop.token)
    assert (r.status_code, r.json["reason"]) == (200, "unknown_txn_id")
    assert log_lines(session)[-1].brand_id == shop.brand.id


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_only_the_canonical_spelling_of_a_click_id_is_that_click(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    # 47 characters hold 282 bits for 280: the last character's 2 low bits are ignored by base64.
    last = _B64.index(click[-1])
    others = [click[:-1] + _B64[(last & ~3) | low] for low in range(4) if _B64[(last & ~3) | low] != click[-1]]
    assert len(others) == 3
    for spelling in others:
        r = postback(client, click_id=spelling, event="lead", token=shop.token)
        assert (r.status_code, r.json["reason"]) == (200, "unknown_click")
    r = postback(client, click_id=click, event="lead", token=shop.token)
    assert r.json["status"] == "approved"
    assert postback(client, click_id=click, event="lead", token=shop.token).json["duplicate"] is True
    assert len(conversions(session)) == 1


# ---- RELIABILITY 7 and 8: replays and txn_id conflicts -------------------------------------------


def test_exact_replay_five_times_is_one_conversion(client, session, shop, signals):
    click = make_click(session, shop.link, at=NOW - HOUR)
    params = {"click_id": click, "event": "sale", "amount": "80.00", "txn_id": "A-1", "token": shop.token}
    answers = [postback(client, **params).json for _ in range(5)]
    first = answers[0]
    assert first["duplicate"] is False and first["status"] == "approved"
    assert all(a == {**first, "duplicate": True} for a in answers[1:])
    rows = conversions(session)
    assert len(rows) == 1 and rows[0].id == first["conversion_id"] and rows[0].payout_minor == 800
    # One commission and one partner postback: the ledger and the outbox hear of it once.
    assert [(s["old_status"], s["new_status"], s["conversion"].id) for s in signals] == [
        (None, "approved", first["conversion_id"])
    ]
    history = session.scalars(select(ConversionHistory)).all()
    assert len(history) == 1
    assert [line.duplicate for line in log_lines(session)] == [False, True, True, True, True]
    assert {line.conversion_id for line in log_lines(session)} == {first["conversion_id"]}


def test_replay_without_txn_id_is_deduped_by_click_and_event(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    a = postback(client, click_id=click, event="lead", token=shop.token).json
    b = postback(client, click_id=click, event="lead", token=shop.token).json
    c = postback(client, click_id=click, event="sale", amount="10.00", token=shop.token).json
    assert b == {**a, "duplicate": True}
    assert c["duplicate"] is False and c["conversion_id"] != a["conversion_id"]
    # The same click may convert again under a new txn_id (a second order).
    d = postback(client, click_id=click, event="lead", txn_id="second", token=shop.token).json
    assert d["duplicate"] is False
    assert len(conversions(session)) == 3


def test_a_replay_finds_its_conversion_by_a_plan_made_afresh(client, session, shop, dialect):
    """PostgreSQL keeps the plan of a prepared statement (psycopg prepares one run five times on a
    connection) until the table is next analyzed; with autovacuum off, never. A plan made while
    conversions was nearly empty reads every conversion of the offer (ix_conversions_offer_created)
    for each replay, so the replay's lookup is never prepared."""
    if dialect != "postgresql":
        pytest.skip("SQLite keeps no plans across statements")
    click = make_click(session, shop.link, at=NOW - HOUR)
    first = postback(client, click_id=click, event="sale", amount="80.00", txn_id="P-1", token=shop.token).json
    (conversion,) = conversions(session)
    key = {"offer_id": conversion.offer_id, "event_id": conversion.event_id, "txn_id": "P-1"}

    def prepared(query: str) -> list[str]:
        statements = session.execute(text("SELECT statement FROM pg_prepared_statements")).scalars()
        return [statement for statement in statements if statement.startswith(query)]

    for _ in range(8):
        assert service.holder(session, {**key, "click_id": click}).id == first["conversion_id"]
    assert prepared("SELECT conversions.id") == []
    # The check sees prepared statements: a query on the driver run as often is one by now.
    read_click = Raw(lambda _dialect: select(Click.id).where(Click.id == bindparam("id", type_=String)))
    for _ in range(8):
        assert read_click.all(session, {"id": click}) == [(click,)]
    assert prepared("SELECT clicks.id") != []


def test_same_txn_id_with_another_amount_is_409_and_changes_nothing(client, session, shop, signals):
    click = make_click(session, shop.link, at=NOW - HOUR)
    first = postback(client, click_id=click, event="sale", amount="80.00", txn_id="A-1", token=shop.token).json
    r = postback(client, click_id=click, event="sale", amount="90.00", txn_id="A-1", token=shop.token)
    assert r.status_code == 409 and "A-1" in r.json["message"]
    (row,) = conversions(session)
    assert (row.id, row.amount_minor, row.payout_minor, row.revenue_minor, row.status) == (
        first["conversion_id"], 8000, 800, 1200, "approved",
    )  # fmt: skip
    assert len(signals) == 1
    line = log_lines(session)[-1]
    assert (line.http_status, line.conversion_id) == (409, first["conversion_id"])
    # The same txn_id on another click of the same offer and event is still that one order.
    click2 = make_click(session, shop.link, at=NOW - HOUR)
    again = postback(client, click_id=click2, event="sale", amount="80.00", txn_id="A-1", token=shop.token).json
    assert again == {**first, "duplicate": True}


# ---- RELIABILITY 10: amounts and malformed input -------------------------------------------------


@pytest.mark.parametrize(
    ("currency", "amount"),
    [
        ("USD", "-5"),
        ("USD", "0"),  # revshare needs a positive sale
        ("USD", "0.00"),
        ("USD", "1e9"),
        ("USD", "NaN"),
        ("USD", "nan"),
        ("USD", "Infinity"),
        ("USD", "-Infinity"),
        ("USD", "10.005"),
        ("JPY", "10.5"),
        ("USD", "\uff11\uff10\uff10"),  # full-width 100
        ("USD", "\u0661\u0660\u0660"),  # Arabic-Indic 100
        ("USD", "100,00"),
        ("USD", "1,000.00"),
        ("USD", " 10"),
        ("USD", "+10"),
        ("USD", "$10"),
        ("USD", "10."),
        ("USD", ".5"),
        ("USD", "0x10"),
        ("USD", "1" * 40),
    ],
)
def test_bad_amounts_are_400_naming_amount(client, session, currency, amount):
    shop = make_shop(session, client, currency=currency, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, event="sale", amount=amount, token=shop.token)
    assert r.status_code == 400, r.json
    assert "amount" in r.json["errors"] and "amount" in r.json["message"]
    assert conversions(session) == []
    assert [line.http_status for line in log_lines(session)] == [400]


def test_bad_amounts_in_json_are_400_naming_amount(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    for body in (
        f'{{"click_id": "{click}", "event": "sale", "amount": NaN, "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": Infinity, "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": 1e9, "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": -5, "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": 10.005, "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": [1], "token": "{shop.token}"}}',
        f'{{"click_id": "{click}", "event": "sale", "amount": "1", "amount": "2", "token": "{shop.token}"}}',
    ):
        r = client.post("/postback", data=body, content_type="application/json")
        assert r.status_code == 400, (body, r.json)
        assert "amount" in r.json["errors"]
    assert conversions(session) == []


def test_a_repeated_parameter_is_400_naming_it(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    base = f"/postback?click_id={click}&event=sale&token={shop.token}"
    r = client.get(base + "&amount=1.00&amount=2.00")
    assert r.status_code == 400 and list(r.json["errors"]) == ["amount"]
    r = client.get(base + "&amount=1.00&txn_id=a&txn_id=a")
    assert r.status_code == 400 and list(r.json["errors"]) == ["txn_id"]
    # Once in the query and once in the body is twice too.
    r = client.post(f"/postback?amount=1.00&token={shop.token}", data={"click_id": click, "amount": "1.00"})
    assert r.status_code == 400 and list(r.json["errors"]) == ["amount"]
    r = client.get(base + f"&amount=1.00&transaction_id={click}")
    assert r.status_code == 400 and list(r.json["errors"]) == ["click_id"]
    assert conversions(session) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"event": "sale", "amount": "10.00"}, "click_id"),
        ({"click_id": "", "event": "sale", "amount": "10.00"}, "click_id"),
        ({"event": "nope"}, "event"),
        ({"event": "sale"}, "amount"),  # revshare without an amount
        ({"event": "sale", "amount": "10.00", "currency": "XXX"}, "currency"),
        ({"event": "sale", "amount": "10.00", "currency": "usd"}, "currency"),
        ({"event": "lead", "status": "approved", "txn_id": "x"}, "status"),
        ({"event": "lead", "status": "reversed"}, "txn_id"),
        ({"event": "lead", "txn_id": "x" * 256}, "txn_id"),
        ({"event": "lead", "offer_id": "1; drop"}, "offer_id"),
    ],
)
def test_malformed_postbacks_are_400_naming_the_field(client, session, shop, params, field):
    params = dict(params)
    if field != "click_id":
        params["click_id"] = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, **params, token=shop.token)
    assert r.status_code == 400, r.json
    assert field in r.json["errors"], r.json
    assert conversions(session) == []


def test_bodies_that_are_not_form_or_json_object_are_400(client, session, shop):
    for data, ctype in (("{not json", "application/json"), ('["a"]', "application/json"), ("x", "text/plain")):
        r = client.post(f"/postback?token={shop.token}", data=data, content_type=ctype)
        assert r.status_code == 400 and "body" in r.json["errors"]
    assert [line.http_status for line in log_lines(session)] == [400, 400, 400]


def test_transaction_id_is_an_alias_of_click_id(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, transaction_id=click, event="lead", token=shop.token)
    assert r.status_code == 200 and r.json["status"] == "approved"
    assert conversions(session)[0].click_id == click


def test_default_event_is_the_offers_first(client, session, shop):
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, amount="20.00", token=shop.token)
    assert r.json["status"] == "approved"
    assert conversions(session)[0].payout_minor == 200  # 10 % of the first event, sale


def test_amount_is_optional_for_flat_events_and_kept_when_given(client, session, shop):
    a = make_click(session, shop.link, at=NOW - HOUR)
    b = make_click(session, shop.link, at=NOW - HOUR)
    postback(client, click_id=a, event="lead", token=shop.token)
    postback(client, click_id=b, event="lead", amount="0", token=shop.token)
    rows = conversions(session)
    assert [(c.amount_minor, c.payout_minor, c.revenue_minor) for c in rows] == [(None, 200, 300), (0, 200, 300)]


# ---- RELIABILITY 11 and the rest of the pipeline -------------------------------------------------


def _verdict(client, shop, click, **params):
    r = postback(client, click_id=click, token=shop.token, **{"event": "lead", **params})
    assert r.status_code == 200, r.json
    return r.json["status"], r.json["reason"]


def test_conversion_before_its_click_after_the_window_or_too_fast_is_rejected(client, session):
    shop = make_shop(session, client, events=[CPL], conversion_window_days=7, min_seconds=30)
    assert _verdict(client, shop, make_click(session, shop.link, at=NOW + HOUR)) == ("rejected", "out_of_window")
    old = make_click(session, shop.link, at=NOW - dt.timedelta(days=7, seconds=1))
    assert _verdict(client, shop, old) == ("rejected", "out_of_window")
    fast = make_click(session, shop.link, at=NOW - dt.timedelta(seconds=29))
    assert _verdict(client, shop, fast) == ("rejected", "too_fast")
    edge = make_click(session, shop.link, at=NOW - dt.timedelta(days=7))
    assert _verdict(client, shop, edge) == ("approved", None)
    rows = conversions(session)
    assert [(c.status, c.reason, c.payout_minor) for c in rows] == [
        ("rejected", "out_of_window", 0), ("rejected", "out_of_window", 0), ("rejected", "too_fast", 0),
        ("approved", None, 200),
    ]  # fmt: skip
    # A rejected conversion is still a conversion: its replay is a duplicate, not a second verdict.
    r = postback(client, click_id=fast, event="lead", token=shop.token).json
    assert (r["conversion_id"], r["duplicate"], r["reason"]) == (rows[2].id, True, "too_fast")


def test_inactive_offer_unapproved_partner_currency_and_geo(client, session):
    from network.auth import SYSTEM
    from network.offers import service as offers

    shop = make_shop(session, client, events=[REVSHARE], countries=["DE", "FR"])
    # currency
    click = make_click(session, shop.link, at=NOW - HOUR, country="DE")
    r = postback(client, click_id=click, amount="10.00", currency="EUR", token=shop.token).json
    assert (r["status"], r["reason"]) == ("rejected", "currency_mismatch")
    assert conversions(session, id=r["conversion_id"])[0].currency == "EUR"
    # geo
    click = make_click(session, shop.link, at=NOW - HOUR, country="US")
    r = postback(client, click_id=click, amount="10.00", token=shop.token).json
    assert (r["status"], r["reason"]) == ("rejected", "geo_mismatch")
    click = make_click(session, shop.link, at=NOW - HOUR, country="FR")
    assert postback(client, click_id=click, amount="10.00", currency="USD", token=shop.token).json["status"] == (
        "approved"
    )
    # partner suspended
    suspended = make_partner(session, name="Gone", status="suspended")
    link = make_link(session, offer=shop.offer, partner=suspended)
    r = postback(client, click_id=make_click(session, link, at=NOW - HOUR, country="DE"), amount="1.00",
                 token=shop.token).json  # fmt: skip
    assert (r["status"], r["reason"]) == ("rejected", "partner_not_approved")
    # approval-only offer, application still pending
    offers.update_offer(session, SYSTEM, shop.offer.id, {"visibility": "approval"})
    session.add(OfferAccess(offer_id=shop.offer.id, partner_id=shop.partner.id, kind="application", status="pending"))
    session.flush()
    click = make_click(session, shop.link, at=NOW - HOUR, country="DE")
    r = postback(client, click_id=click, amount="1.00", token=shop.token).json
    assert (r["status"], r["reason"]) == ("rejected", "partner_not_approved")
    # paused offer
    offers.change_status(session, SYSTEM, shop.offer.id, "pause")
    session.flush()
    click = make_click(session, shop.link, at=NOW - HOUR, country="DE")
    r = postback(client, click_id=click, amount="1.00", token=shop.token).json
    assert (r["status"], r["reason"]) == ("rejected", "offer_inactive")
    assert len(conversions(session)) == 6


def test_partner_override_sets_the_payout(client, session, shop):
    r = shop.brand_api.put(
        f"/api/v1/offers/{shop.offer.id}/overrides",
        json={"partner_id": shop.partner.id, "event": "sale", "payout_percent": "12"},
    )
    assert r.status_code == 200, r.json
    click = make_click(session, shop.link, at=NOW - HOUR)
    postback(client, click_id=click, event="sale", amount="80.00", token=shop.token)
    (row,) = conversions(session)
    assert (row.payout_minor, row.revenue_minor) == (960, 1200)


@pytest.mark.parametrize(
    ("currency", "percent", "amount", "payout"),
    [
        ("USD", "12.5", "0.04", 1),  # 0.005 -> 0.01
        ("USD", "12.5", "0.12", 2),  # 0.015 -> 0.02
        ("JPY", "10", "5", 1),  # 0.5 yen -> 1
        ("JPY", "10", "15", 2),  # 1.5 -> 2
        ("BHD", "10", "0.015", 2),  # 0.0015 -> 0.002
        ("BHD", "10", "0.025", 3),  # 0.0025 -> 0.003
    ],
)
def test_revshare_rounds_ties_half_up_once(client, session, currency, percent, amount, payout):
    event = {"key": "sale", "model": "revshare", "payout_percent": percent, "revenue_percent": percent}
    shop = make_shop(session, client, currency=currency, events=[event])
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = postback(client, click_id=click, amount=amount, token=shop.token)
    assert r.status_code == 200, r.json
    (row,) = conversions(session)
    assert (row.payout_minor, row.revenue_minor, row.currency) == (payout, payout, currency)
    listed = shop.partner_api.get("/api/v1/conversions").json["items"][0]
    # The partner sees its payout, never the brand's sale amount (as in reports).
    assert (listed["payout"], "amount" in listed) == (money.format_amount(payout, currency), False)
    assert shop.brand_api.get("/api/v1/conversions").json["items"][0]["amount"] == amount
