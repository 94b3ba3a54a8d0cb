"""RELIABILITY.md case 29: arbitrary text (NUL, control characters, lone surrogates, 1 MB) in every
string field of every write endpoint: a 400 naming the field, or the request succeeds and the value
reads back as sent; never a 500, the same on both databases.

The endpoints and their string fields are read from the OpenAPI document, so a new endpoint or a
new field is thrown at without touching this file (a new endpoint needs a valid body in BASES,
and a test fails until it has one).
"""

from __future__ import annotations

import copy
import ipaddress
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from network.app import create_app
from tests.conftest import BoundDatabase, make_settings
from tests.conversions.conftest import make_click, make_link
from tests.factories import Api, cpa_event, make_brand, make_key, make_offer, make_partner

#: Where partners' postbacks go in the bodies below: a global address, so no name is resolved.
PB_URL = "https://93.184.216.34/pb?c={click_id}"
EVENT = cpa_event()
CAP = {"metric": "conversions", "period": "day", "limit": 10, "scope": "offer"}
OFFER_FIELDS: dict[str, Any] = {
    "name": "Offer",
    "destination_url": "https://shop.example/?c={click_id}",
    "allowed_domains": ["shop.example"],
    "countries": ["US"],
    "devices": ["mobile"],
    "caps": [CAP],
    "events": [EVENT],
    "hold_flags": ["bot"],
}

#: (method, path) -> (role, valid body, path to read the object back or None). {names} are the
#: world's ids; in the read path, {id} is the id the write answered.
BASES: dict[tuple[str, str], tuple[str, dict[str, Any], str | None]] = {
    ("POST", "/api/v1/keys"): ("admin", {"role": "finance", "label": "ops"}, None),
    ("POST", "/api/v1/brands"): ("admin", {"name": "Brand", "currency": "USD"}, "/api/v1/brands/{id}"),
    ("PATCH", "/api/v1/brands/{brand_id}"): ("admin", {}, "/api/v1/brands/{brand_id}"),
    ("POST", "/api/v1/partners"): ("admin", {"name": "Partner"}, "/api/v1/partners/{id}"),
    ("PATCH", "/api/v1/partners/{partner_id}"): ("admin", {}, "/api/v1/partners/{partner_id}"),
    ("POST", "/api/v1/partners/{partner_id}/status"): ("admin", {"status": "active"}, "/api/v1/partners/{partner_id}"),
    ("POST", "/api/v1/offers"): ("admin", {"brand_id": "{brand_id}", **OFFER_FIELDS}, "/api/v1/offers/{id}"),
    ("PATCH", "/api/v1/offers/{offer_id}"): ("admin", OFFER_FIELDS, "/api/v1/offers/{offer_id}"),
    ("POST", "/api/v1/offers/{offer_id}/applications"): ("partner", {"note": "hello"}, None),
    ("POST", "/api/v1/offers/{offer_id}/invitations"): ("admin", {"partner_id": "{partner_id}"}, None),
    ("PUT", "/api/v1/offers/{offer_id}/overrides"): (
        "admin",
        {"partner_id": "{partner_id}", "event": "sale", "payout": "1.00"},
        None,
    ),
    ("POST", "/api/v1/links"): ("partner", {"offer_id": "{public_offer_id}", "sub1": "s"}, "/api/v1/links/{id}"),
    ("POST", "/api/v1/conversions/{conversion_id}/status"): (
        "admin",
        {"status": "rejected", "reason": "r"},
        "/api/v1/conversions/{conversion_id}",
    ),
    ("POST", "/api/v1/partners/{partner_id}/adjustments"): (
        "finance",
        {"currency": "USD", "amount": "1.00", "memo": "m"},
        None,
    ),
    ("POST", "/api/v1/payout-runs"): ("finance", {}, None),
    ("POST", "/api/v1/payouts/{payout_id}/approve"): ("finance", {"note": "n"}, "/api/v1/payouts/{payout_id}"),
    ("POST", "/api/v1/payouts/{payout_id}/hold"): ("finance", {"note": "n"}, "/api/v1/payouts/{payout_id}"),
    ("POST", "/api/v1/payouts/{held_payout_id}/unhold"): (
        "finance",
        {"note": "n"},
        "/api/v1/payouts/{held_payout_id}",
    ),
    ("POST", "/api/v1/payouts/{payout_id}/cancel"): ("finance", {"note": "n"}, "/api/v1/payouts/{payout_id}"),
    ("POST", "/api/v1/partners/{partner_id}/postback-test"): ("admin", {}, None),
    ("POST", "/api/v1/partners/{partner_id}/offer-postbacks"): (
        "partner",
        {"offer_id": "{other_offer_id}", "url": PB_URL, "method": "get"},
        None,
    ),
    ("PATCH", "/api/v1/partners/{partner_id}/offer-postbacks/{postback_id}"): (
        "partner",
        {"url": PB_URL, "method": "post"},
        None,
    ),
    ("POST", "/api/v1/coupons"): (
        "admin",
        {"offer_id": "{public_offer_id}", "partner_id": "{partner_id}", "code": "SPRING10"},
        "/api/v1/coupons/{id}",
    ),
    ("POST", "/api/v1/customers/{customer_id}/move"): ("admin", {"partner_id": "{partner_id}"}, None),
    ("POST", "/api/v1/invoice-runs"): ("finance", {}, None),
    ("POST", "/api/v1/invoices/{invoice_id}/issue"): ("finance", {}, None),
    ("POST", "/api/v1/invoices/{invoice_id}/void"): ("finance", {"reason": "r"}, None),
    ("POST", "/api/v1/invoices/{invoice_id}/mark-paid"): ("finance", {"reference": "wire 1"}, None),
    ("POST", "/api/v1/invoices/{invoice_id}/mark-uncollectible"): ("finance", {"reason": "r"}, None),
    ("PATCH", "/api/v1/brands/{brand_id}/billing"): ("finance", {}, None),
    ("POST", "/api/v1/brands/{brand_id}/billing/prepayments"): (
        "finance",
        {"currency": "USD", "amount": "1.00", "memo": "m"},
        None,
    ),
}
#: Fields the service normalises on purpose (hosts, country codes, amounts, numbers): a success
#: stores the normal form, not the text sent.
NORMALISED = re.compile(
    r"^(allowed_domains|countries)\[0\]$|payout|revenue|amount|percent|^caps\[0\]\.limit$|^(postback|fallback)_url$"
    r"|^credit_limit$"
)
#: The path parameters of the spec, as the world names them (a payout action has its own payout).
PATH_PARAMS = {"{held_payout_id}": "{payout_id}"}


def _spec() -> dict[str, Any]:
    app = create_app(make_settings("sqlite://"))
    return app.test_client().get("/api/openapi.json").get_json()


SPEC = _spec()


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = SPEC["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def string_fields(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    """Yield the path of every field of a request schema that may hold text (strings, untyped values)."""
    for name, prop in _resolve(schema).get("properties", {}).items():
        prop = _resolve(prop)
        path = f"{prefix}{name}"
        if prop.get("readOnly"):
            continue
        if prop.get("type") == "array":
            items = _resolve(prop["items"])
            if "properties" in items:
                yield from string_fields(items, f"{path}[0].")
            elif items.get("type") in ("string", None):
                yield f"{path}[0]"
        elif "properties" in prop:
            yield from string_fields(prop, f"{path}.")
        elif prop.get("type") in ("string", None):
            yield path


def write_endpoints() -> dict[tuple[str, str], dict[str, Any]]:
    """Return every write endpoint of the API that takes a JSON body, with its body's schema.

    Not `/postback` (its parameters have their own property test: tests/conversions/test_postback_text.py)
    nor `/webhooks/stripe` (Stripe's signature is checked before its body is read).
    """
    found = {}
    for path, item in SPEC["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method not in ("post", "put", "patch"):
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                found[(method.upper(), path)] = body
    return found


def _base_key(method: str, path: str) -> tuple[str, str]:
    for ours, theirs in PATH_PARAMS.items():
        if (method, path.replace(theirs, ours)) in BASES:
            return method, path.replace(theirs, ours)
    return method, path


CASES = [
    (*_base_key(method, path), field)
    for (method, path), schema in write_endpoints().items()
    for field in string_fields(schema)
]


def test_every_write_endpoint_of_the_document_has_a_valid_body_here():
    missing = {_base_key(*key) for key in write_endpoints()} - set(BASES)
    assert not missing, f"add a valid body to BASES for {sorted(missing)}"
    assert len(CASES) > 60  # the document really was read


#: Text no well-behaved client sends, and a megabyte (the body stays under MAX_CONTENT_LENGTH).
NASTY = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x01\x1f",
    "\x7f",
    "\x85",
    "\ud800",
    "a\udfffb",
    "tab\there",
    "two\nlines\r\n",
    "\u2028\u202e\ufeff",
    "é" * 300,
    "x" * 10_000,
    "x" * 1_000_000,
]
TEXT = st.one_of(
    st.sampled_from(NASTY),
    # Every code point, surrogates and controls included.
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
)


def _set(body: dict[str, Any], path: str, value: Any) -> None:
    """Set the field at `path` ("events[0].key"); the base body holds every list it goes through."""
    *parents, last = [int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"[^.\[\]]+|\[\d+\]", path)]
    node: Any = body
    for part in parents:
        node = node[part]
    node[last] = value


def _get(body: Any, path: str) -> Any:
    node = body
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or len(node) <= index:
                return KeyError
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return KeyError
    return node


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str) and re.fullmatch(r"\{\w+\}", value):
        return ids[value[1:-1]]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


def _names(errors: dict[str, Any], field: str) -> bool:
    return any(
        key == field or key.startswith((f"{field}[", f"{field}.")) or field.startswith((f"{key}.", f"{key}["))
        for key in errors
    )


def _no_dns(real: Any) -> Any:
    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        # Tests never reach the internet: an address resolves, a name does not.
        try:
            ipaddress.ip_address(str(host).strip("[]"))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "no names in tests") from None
        return real(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(scope="module")
def world(engine: Any, database_url: str) -> Iterator[dict[str, Any]]:
    """Every object the write endpoints act on and a key for each role, built once in a transaction
    rolled back at the end (each example runs in a savepoint of it)."""
    connection = engine.connect()
    outer = connection.begin()
    db = BoundDatabase(database_url, engine, connection)
    app = create_app(make_settings(database_url), database=db)
    session = db.session()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(socket, "getaddrinfo", _no_dns(socket.getaddrinfo))
            yield _build(app.test_client(), session, db)
        assert app.extensions["network.conversions.recorder"].failures == 0
    finally:
        session.close()
        outer.rollback()
        connection.close()


def _build(client: Any, session: Session, db: BoundDatabase) -> dict[str, Any]:
    brand = make_brand(session)
    partner = make_partner(session)
    other_partner = make_partner(session, name="Other")
    public = make_offer(session, brand=brand, name="Public")
    other = make_offer(session, brand=brand, name="Other public")
    approval = make_offer(session, brand=brand, name="Approval", visibility="approval")
    keys = {
        "admin": make_key(session, role="admin"),
        "finance": make_key(session, role="finance"),
        "partner": make_key(session, role="partner", partner=partner),
    }
    session.flush()
    ids: dict[str, Any] = {
        "brand_id": brand.id,
        "partner_id": partner.id,
        "offer_id": approval.id,
        "public_offer_id": public.id,
        "other_offer_id": other.id,
    }
    link = make_link(session, offer=public, partner=partner)
    click = make_click(session, link, at=public.created_at)
    r = client.get("/postback", query_string={"click_id": click, "event": "sale", "token": brand.postback_token})
    assert r.status_code == 200 and r.json["status"] in ("pending", "approved"), r.json
    ids["conversion_id"] = r.json["conversion_id"]
    finance = Api(client, keys["finance"])
    for who in (partner.id, other_partner.id):
        r = finance.post(
            f"/api/v1/partners/{who}/adjustments", json={"currency": "USD", "amount": "100.00", "memo": "m"}
        )
        assert r.status_code == 201, r.json
    r = finance.post("/api/v1/payout-runs", json={})
    assert r.status_code == 201 and len(r.json["payouts"]) == 2, r.json
    ids["payout_id"], ids["held_payout_id"] = (p["id"] for p in r.json["payouts"])
    assert finance.post(f"/api/v1/payouts/{ids['held_payout_id']}/hold", json={}).status_code == 200
    r = Api(client, keys["partner"]).post(
        f"/api/v1/partners/{partner.id}/offer-postbacks", json={"offer_id": public.id, "url": PB_URL}
    )
    assert r.status_code == 201, r.json
    ids["postback_id"] = r.json["id"]
    # An issued invoice of the approved conversion's revenue, for the invoice actions.
    admin = Api(client, keys["admin"])
    r = admin.post(f"/api/v1/conversions/{ids['conversion_id']}/status", json={"status": "approved", "reason": "r"})
    assert r.status_code == 200, r.json
    r = finance.post("/api/v1/invoice-runs", json={})
    assert r.status_code == 201 and len(r.json["invoices"]) == 1, r.json
    ids["invoice_id"] = r.json["invoices"][0]["id"]
    r = finance.post(f"/api/v1/invoices/{ids['invoice_id']}/issue", json={})
    assert r.status_code == 200, r.json
    return {"ids": ids, "keys": keys, "client": client, "db": db}


@pytest.mark.parametrize(("method", "path", "field"), CASES, ids=[f"{m} {p} {f}" for m, p, f in CASES])
@hsettings(max_examples=6, deadline=None)
@example(value="\x00")
@example(value="\ud800")
@example(value="x" * 1_000_000)
@given(value=TEXT)
def test_arbitrary_text_in_any_field_is_400_naming_it_or_reads_back_as_sent(world, method, path, field, value):
    role, base, read = BASES[(method, path)]
    ids = world["ids"]
    body = copy.deepcopy(_fill(base, ids))
    _set(body, field, value)
    url = path.format(**ids)
    api = Api(world["client"], world["keys"][role])
    savepoint = world["db"].connection.begin_nested()  # each example starts from the same world
    try:
        r = api._call(method.lower(), url, json=body)
        assert r.status_code < 500, (r.status_code, r.json)
        if r.status_code == 400:
            assert _names(r.json.get("errors", {}), field), (field, r.json)
            return
        assert r.status_code in (200, 201), (r.status_code, r.json)
        if NORMALISED.search(field):
            return
        answered = [r.json]
        if read is not None:
            again = api.get(read.format(**ids, id=r.json.get("id")))
            assert again.status_code == 200, again.json
            answered.append(again.json)
        for seen in answered:
            stored = _get(seen, field)
            if stored is not KeyError and not (stored is None and not value.strip()):
                assert stored == value, (field, stored, value)
    finally:
        savepoint.rollback()
