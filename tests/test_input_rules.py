"""Every bad body is a 400 (413 for size) in the one JSON error shape: nesting, integers, money, text."""

from __future__ import annotations

import json
from typing import Any

import pytest

from network import text
from network.web import MAX_JSON_DEPTH, json_too_deep
from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner
from tests.test_text_property import write_endpoints

WRITES = sorted(write_endpoints())


class _Ones(dict):
    """Path parameters: 1 for every id (the body is refused before any object is looked up)."""

    def __missing__(self, key: str) -> int:
        return 1


@pytest.fixture
def admin(client, session) -> Api:
    key = make_key(session, role="admin")
    session.flush()
    return Api(client, key)


def _error_shape(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.get_data(as_text=True)[:300])
    body = r.get_json()
    assert set(body) <= {"code", "message", "errors", "request_id"} and body["code"] and body["message"], body
    return body


# ---- JSON nesting and size -----------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 10_000])
def test_json_nested_deeply_is_400_on_every_write_endpoint(admin, depth):
    for method, path in WRITES:
        for body in ("[" * depth + "]" * depth, '{"name": ' + "[" * depth + "]" * depth + "}"):
            r = admin._call(method.lower(), path.format_map(_Ones()), data=body, content_type="application/json")
            error = _error_shape(r, 400)
            assert error["code"] == "validation_error" and "nested deeper" in error["message"], (method, path)


def test_json_as_deep_as_allowed_is_read(admin):
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    r = admin.post(
        "/api/v1/brands", data='{"name": ' + nested + ', "currency": "USD"}', content_type="application/json"
    )
    # Read, and refused for what it is: a list is not a name.
    assert _error_shape(r, 400)["errors"] == {"name": ["Not a valid string."]}


def test_a_body_past_the_limit_is_413_in_the_json_shape_on_every_write_endpoint(admin):
    body = json.dumps({"name": "x" * (1024 * 1024)})
    for method, path in WRITES:
        r = admin._call(method.lower(), path.format_map(_Ones()), data=body, content_type="application/json")
        assert _error_shape(r, 413)["code"] == "request_entity_too_large", (method, path)


def test_json_too_deep_ignores_brackets_inside_strings():
    assert json_too_deep(b"[" * 33 + b"]" * 33) and not json_too_deep(b"[" * 32 + b"]" * 32)
    inside = b'{"a": "' + b"[" * 100 + b'", "b": "\\"' + b"{" * 100 + b'"}'
    assert not json_too_deep(inside)
    assert json.loads(inside)  # the string really holds them


# ---- integers are JSON integers ------------------------------------------------------------------


@pytest.fixture
def brand(session):
    brand = make_brand(session)
    session.flush()
    return brand


def _offer(brand_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "brand_id": brand_id,
        "name": "N",
        "destination_url": "https://shop.example/",
        "events": [cpa_event()],
        **extra,
    }


@pytest.mark.parametrize("value", [0.5, 1.9, "30", True, 30.0, "0x1e", None])
@pytest.mark.parametrize("field", ["conversion_window_days", "hold_days", "min_seconds"])
def test_an_integer_field_takes_a_json_integer_only(admin, brand, field, value):
    r = admin.post("/api/v1/offers", json=_offer(brand.id, **{field: value}))
    error = _error_shape(r, 400)
    assert list(error["errors"]) == [field] and field in error["message"]


def test_conversion_window_days_half_is_refused_not_truncated(admin, brand, session):
    r = admin.post("/api/v1/offers", json=_offer(brand.id, conversion_window_days=0.5))
    assert _error_shape(r, 400)["errors"] == {"conversion_window_days": ["Not a valid integer."]}
    r = admin.post("/api/v1/offers", json=_offer(brand.id, conversion_window_days=30))
    assert r.status_code == 201 and r.json["conversion_window_days"] == 30


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/keys", {"role": "brand", "brand_id": "{brand}"}, "brand_id"),
        ("/api/v1/offers", {"name": "N", "destination_url": "https://a.example/", "brand_id": "{brand}"}, "brand_id"),
        ("/api/v1/offers/{offer}/invitations", {"partner_id": "{partner}"}, "partner_id"),
        (
            "/api/v1/partners/{partner}/offer-postbacks",
            {"offer_id": "{offer}", "url": "https://a.example/"},
            "offer_id",
        ),
    ],
)
def test_an_id_given_as_a_string_is_refused(admin, session, brand, path, body, field):
    partner = make_partner(session)
    offer = make_offer(session, brand=brand)
    ids = {"brand": brand.id, "partner": partner.id, "offer": offer.id}
    body = {k: (str(ids[v[1:-1]]) if isinstance(v, str) and v.startswith("{") else v) for k, v in body.items()}
    r = admin.post(path.format(**ids), json=body)
    assert field in _error_shape(r, 400)["errors"]


@pytest.mark.parametrize("value", ["%201", "1_0", "1.0", "%D9%A3", "true", "0x10", "+1"])
def test_an_integer_in_a_query_string_is_ascii_digits(admin, value):
    r = admin.get(f"/api/v1/offers?limit={value}")
    assert list(_error_shape(r, 400)["errors"]) == ["limit"]


def test_an_integer_in_a_query_string_is_read(admin, brand, session):
    make_offer(session, brand=brand)
    make_offer(session, brand=brand, name="Second")
    r = admin.get(f"/api/v1/offers?limit=1&brand_id={brand.id}")
    assert r.status_code == 200 and len(r.json["items"]) == 1 and r.json["limit"] == 1
    assert admin.get("/api/v1/reports?limit=5&offset=0").status_code == 200


# ---- money: empty is not zero --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("post", "/api/v1/offers", {"events": [cpa_event(payout="")]}, "events[0].payout"),
        ("post", "/api/v1/offers", {"events": [cpa_event(revenue="")]}, "events[0].revenue"),
        ("post", "/api/v1/offers", {"click_payout": ""}, "click_payout"),
        ("post", "/api/v1/offers", {"impression_revenue": ""}, "impression_revenue"),
        ("post", "/api/v1/offers", {"payout_min_amount": ""}, "payout_min_amount"),
        (
            "post",
            "/api/v1/offers",
            {"events": [{"key": "s", "model": "revshare", "payout_percent": "", "revenue_percent": "5"}]},
            "events[0].payout_percent",
        ),
        (
            "put",
            "/api/v1/offers/{offer}/overrides",
            {"partner_id": "{partner}", "event": "sale", "payout": ""},
            "payout",
        ),
        ("patch", "/api/v1/partners/{partner}", {"payout_min_amount": ""}, "payout_min_amount"),
        ("post", "/api/v1/partners/{partner}/adjustments", {"currency": "USD", "amount": "", "memo": "m"}, "amount"),
    ],
)
def test_an_empty_amount_is_400_not_zero(admin, session, brand, method, path, body, field):
    partner = make_partner(session)
    offer = make_offer(session, brand=brand)
    session.flush()
    ids = {"brand": brand.id, "partner": partner.id, "offer": offer.id}
    if path == "/api/v1/offers":
        body = _offer(brand.id, **body)
    body = {k: (ids[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v) for k, v in body.items()}
    r = getattr(admin, method)(path.format(**ids), json=body)
    error = _error_shape(r, 400)
    assert field in error["errors"] and field in error["message"], error


# ---- the text rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "free_text", "refused"),
    [
        ("Deal Blog", False, False),
        ("café ✓ 日本 \u00a0\u200b", False, False),
        ("a\x00b", False, True),
        ("a\x00b", True, True),
        ("tab\there", False, True),
        ("tab\there", True, False),
        ("two\r\nlines", True, False),
        ("\x1b[31m", True, True),
        ("\x7f", False, True),
        ("\x85", True, True),  # C1
        ("\x9f", False, True),
        ("\ud800", False, True),
        ("a\udfffb", True, True),
        ("\U0001f600", False, False),  # a real astral character, not a surrogate pair
    ],
)
def test_the_text_rule(value, free_text, refused):
    assert (text.problem(value, free_text=free_text) is not None) == refused


@pytest.mark.parametrize(
    ("value", "limit", "kept"),
    [
        ("spring", 255, "spring"),
        ("a\x00b\x01c\x85d\x7f", 255, "abcd"),
        ("\r\nSet-Cookie: x", 255, "Set-Cookie: x"),
        ("a\ud800b", 255, "ab"),
        ("y" * 300, 255, "y" * 254 + "\u2026"),
        ("\x00" * 10 + "y" * 300, 255, "y" * 254 + "\u2026"),
        ("", 255, ""),
        (None, 255, None),
    ],
)
def test_the_click_path_cleans_and_cuts(value, limit, kept):
    assert text.cleaned(value, limit) == kept


@pytest.mark.parametrize(
    ("path", "body", "field", "stored"),
    [
        (
            "/api/v1/partners/{partner}/adjustments",
            {"currency": "USD", "amount": "1.00", "memo": "a\nb"},
            "memo",
            "a\nb",
        ),
        (
            "/api/v1/partners/{partner}/adjustments",
            {"currency": "USD", "amount": "1.00", "memo": "a\x00b"},
            "memo",
            None,
        ),
        ("/api/v1/partners", {"name": "two\nlines"}, "name", None),
        ("/api/v1/partners", {"name": "C1\x85"}, "name", None),
        ("/api/v1/brands", {"name": "x" * 201, "currency": "USD"}, "name", None),
        ("/api/v1/keys", {"role": "finance", "label": "x" * 201}, "label", None),
    ],
)
def test_free_text_keeps_its_lines_and_names_keep_none(admin, session, path, body, field, stored):
    partner = make_partner(session)
    session.flush()
    finance = Api(admin.client, make_key(session, role="finance"))
    r = (finance if "adjustments" in path else admin).post(path.format(partner=partner.id), json=body)
    if stored is None:
        error = _error_shape(r, 400)
        assert list(error["errors"]) == [field] and field in error["message"]
    else:
        assert r.status_code == 201 and r.json[field] == stored


@pytest.mark.parametrize("query", ["status=a%00b", "status=%C2%85", "group_by=day%00"])
def test_a_query_parameter_with_control_characters_is_400_naming_it(admin, query):
    path = "/api/v1/reports" if query.startswith("group_by") else "/api/v1/partners"
    r = admin.get(f"{path}?{query}")
    assert list(_error_shape(r, 400)["errors"]) == [query.split("=")[0]]
