"""A postback's own parameters follow the API's text rule (400 naming the field), its JSON numbers are
read as the decimals they were written as, and no body, however nested, is a 500."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from network.conversions import service
from tests.conversions.conftest import CPL, NOW, REVSHARE, conversions, log_lines, make_click, make_shop

pytestmark = pytest.mark.usefixtures("checked")

HOUR = dt.timedelta(hours=1)


@pytest.fixture(autouse=True)
def _now(frozen_clock):
    frozen_clock(NOW)


def _post_json(client, body: str):
    return client.post("/postback", data=body, content_type="application/json")


@pytest.mark.parametrize(
    ("currency", "amount"), [("USD", "10.005"), ("USD", "10.0005"), ("JPY", "10.5"), ("BHD", "1.0001")]
)
def test_a_json_amount_with_too_many_decimals_names_the_offers_currency(client, session, currency, amount):
    shop = make_shop(session, client, currency=currency, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = _post_json(client, f'{{"click_id": "{click}", "event": "sale", "amount": {amount}, "token": "{shop.token}"}}')
    assert r.status_code == 400 and list(r.json["errors"]) == ["amount"], r.json
    assert currency in r.json["message"], r.json
    assert conversions(session) == []


@pytest.mark.parametrize(
    ("amount", "minor"), [("80.10", 8010), ("80.1", 8010), ("0.29", 29), ("1.15", 115), ("12345678.99", 1234567899)]
)
def test_a_json_number_is_read_as_the_decimal_it_was_written_as(client, session, amount, minor):
    # Through a float, 0.29 * 100 is 28.999999999999996 and 1.15 * 100 is 114.99999999999999.
    shop = make_shop(session, client, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - HOUR)
    r = _post_json(client, f'{{"click_id": "{click}", "event": "sale", "amount": {amount}, "token": "{shop.token}"}}')
    assert r.status_code == 200 and r.json["status"] == "approved", r.json
    [conversion] = conversions(session)
    assert conversion.amount_minor == minor


@pytest.mark.parametrize("depth", [1_000, 10_000])
def test_a_postback_body_nested_deeply_is_400_in_the_json_shape(client, session, shop, depth):
    for body in ("[" * depth + "]" * depth, '{"amount": ' + "[" * depth + "]" * depth + "}"):
        r = _post_json(client, body)
        assert r.status_code == 400 and r.json["code"] == "validation_error" and r.json["message"], r.json
    assert [line.http_status for line in log_lines(session)] == [400, 400]


@pytest.mark.parametrize(
    ("name", "value"),
    [("txn_id", "A\x85B"), ("event", "lead\x9f"), ("txn_id", "\ud800"), ("reason", "a\udfffb"), ("click_id", "\x7f")],
)
def test_c1_controls_and_lone_surrogates_are_400_naming_the_parameter(client, session, shop, name, value):
    click = make_click(session, shop.link, at=NOW - HOUR)
    params = {"click_id": click, "event": "lead", "token": shop.token, name: value}
    if name == "reason":
        params.update(status="rejected", txn_id="T-1")
    r = client.post("/postback", json=params)
    assert r.status_code == 400 and list(r.json["errors"]) == [name] and name in r.json["message"], r.json
    assert conversions(session) == []
    [line] = log_lines(session)
    assert line.http_status == 400


#: What a brand's system could send in any parameter: every code point, and a megabyte.
TEXT = st.one_of(
    st.sampled_from(["", "\x00", "\x85", "\ud800", "\t", "é" * 300, "x" * 1_000_000]),
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
)


@pytest.mark.parametrize("name", sorted(set(service.PARAMS) - {"token"}))
@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(value="\x00")
@example(value="\ud800")
@example(value="x" * 1_000_000)
@given(value=TEXT)
def test_arbitrary_text_in_a_postback_parameter_is_400_naming_it_or_judged(client, session, name, value):
    savepoint = session.begin_nested()  # each example starts from nothing
    try:
        shop = make_shop(session, client, events=[CPL])
        click = make_click(session, shop.link, at=NOW - HOUR)
        params = {"click_id": click, "event": "lead", "token": shop.token, name: value}
        if name == "transaction_id":
            del params["click_id"]
        r = client.post("/postback", data=json.dumps(params), content_type="application/json")
        assert r.status_code in (200, 400, 409), (r.status_code, r.json)
        if r.status_code == 400:
            named = "click_id" if name == "transaction_id" else name
            assert named in r.json["errors"] and named in r.json["message"], (name, r.json)
        session.expire_all()
        assert log_lines(session)  # the request left its line, storable whatever it held
    finally:
        savepoint.rollback()
