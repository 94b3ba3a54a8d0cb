"""RELIABILITY.md 13 and 14 and macro injection: nothing reaches a non-global address, values stay values."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest

from network.auth import SYSTEM
from network.config import Settings
from network.deliveries import targets
from network.deliveries.models import OfferPostback
from network.deliveries.sender import Transport
from network.netguard import Resolver, validate_postback_template
from network.partners.models import Partner
from tests.conftest import make_settings
from tests.deliveries.conftest import attempts, deliver, deliveries, fast, make_conversion, make_scene
from tests.deliveries.endpoints import Endpoint, respond
from tests.factories import Api, make_key

PUBLIC = "93.184.216.34"


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Plain http allowed (so each case is refused for its address, not its scheme), no exemptions."""
    return make_settings(database_url, postback_allow_http=True, postback_allowed_networks=())


# RELIABILITY.md case 13, each with the problem its refusal must name.
CASE_13 = [
    ("http://127.0.0.1/cb", "non-global address 127.0.0.1 (loopback)"),
    ("http://localhost/cb", "non-global address"),
    ("http://[::1]/cb", "non-global address ::1 (loopback)"),
    ("http://[::ffff:127.0.0.1]/cb", "IPv4-mapped 127.0.0.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 (cloud metadata)"),
    ("http://10.0.0.1/cb", "10.0.0.1 (private)"),
    ("http://100.64.0.1/cb", "100.64.0.1 (carrier-grade NAT)"),
    ("http://0.0.0.0/cb", "0.0.0.0 (unspecified)"),
    ("http://2130706433/cb", "non-canonical numeric host '2130706433' not allowed (means 127.0.0.1)"),
    ("http://0x7f.1/cb", "non-canonical numeric host '0x7f.1' not allowed (means 127.0.0.1)"),
    ("file:///etc/passwd", "scheme must be https or http, not 'file'"),
    ("gopher://127.0.0.1:70/_x", "scheme must be https or http, not 'gopher'"),
    ("https://user:pass@partner.example/cb", "userinfo not allowed"),
    ("https://{sub1}.partner.example/cb", "macro not allowed in host"),
]


@pytest.fixture
def partner_api(session, client):
    """A partner with an offer it may run, and its API client."""
    scene = make_scene(session)
    partner = session.get(Partner, scene.partner_id)
    return scene, Api(client, make_key(session, role="partner", partner=partner))


@pytest.mark.parametrize(("url", "problem"), CASE_13)
def test_case_13_global_url_refused_at_save(partner_api, session, url: str, problem: str):
    scene, api = partner_api
    r = api.patch(f"/api/v1/partners/{scene.partner_id}", json={"postback_url": url})
    assert r.status_code == 400, r.json
    assert problem in r.json["message"] and r.json["code"] == "unsafe_url"
    session.expire_all()
    assert session.get(Partner, scene.partner_id).postback_url is None


@pytest.mark.parametrize(("url", "problem"), CASE_13)
def test_case_13_per_offer_url_refused_at_save(partner_api, session, url: str, problem: str):
    scene, api = partner_api
    r = api.post(f"/api/v1/partners/{scene.partner_id}/offer-postbacks", json={"offer_id": scene.offer_id, "url": url})
    assert r.status_code == 400, r.json
    assert problem in r.json["message"] and r.json["code"] == "unsafe_url"
    assert r.json["errors"] == {"url": [r.json["message"]]}
    assert session.query(OfferPostback).count() == 0


def test_case_13_per_offer_url_refused_when_changed(partner_api, session):
    scene, api = partner_api
    row = OfferPostback(partner_id=scene.partner_id, offer_id=scene.offer_id, url="https://partner.example/cb")
    session.add(row)
    session.flush()
    for url, problem in CASE_13:
        r = api.patch(f"/api/v1/partners/{scene.partner_id}/offer-postbacks/{row.id}", json={"url": url})
        assert r.status_code == 400 and problem in r.json["message"], (url, r.json)
    session.expire_all()
    assert session.get(OfferPostback, row.id).url == "https://partner.example/cb"


def rebinding() -> Resolver:
    """Return DNS that answers a public address once (the save), then loopback (every send)."""
    answers = iter([[PUBLIC]])

    def resolve(host: str, port: int) -> list[str]:
        if host != "partner.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return next(answers, ["127.0.0.1"])

    return resolve


@pytest.mark.parametrize("where", ["global", "per-offer"])
def test_case_14_dns_rebinding_to_loopback_never_connects(committed_db, settings, endpoints, where: str):
    victim: Endpoint = endpoints("127.0.0.1")
    template = victim.url("/cb?c={click_id}", host="partner.example")
    dns = rebinding()
    with committed_db.session_scope() as s:
        scene = make_scene(s)
        if where == "global":
            # Saved as the partners service saves it, with the DNS answer of that moment.
            validate_postback_template(template, allow_http=True, allowed_networks=(), resolver=dns)
            s.get(Partner, scene.partner_id).postback_url = template
        else:
            targets.create_offer_postback(
                s,
                SYSTEM,
                scene.partner_id,
                offer_id=scene.offer_id,
                url=template,
                allow_http=True,
                allowed_networks=(),
                resolver=dns,
            )
        make_conversion(s, scene)
    transport = Transport(allow_http=True, allowed_networks=(), resolver=dns, connect_timeout=0.5, read_timeout=0.5)
    assert deliver(committed_db, settings, transport=transport) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        (attempt,) = attempts(s, row.id)
        assert row.status == "pending"  # retried later, re-checked every time
        assert attempt.status_code is None and attempt.address is None
        assert attempt.error == "blocked: host resolves to a non-global address 127.0.0.1 (loopback)"
    assert victim.connections == 0


def test_case_14_redirect_to_loopback_is_not_followed(committed_db, settings, endpoints):
    victim = endpoints("127.0.0.1", respond(200, b"internal secret"))
    first_hop = endpoints("127.0.0.2", respond(302, headers={"Location": victim.url("/latest/meta-data/")}))
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=first_hop.url("/cb?c={click_id}")))
    # Only the partner's own address is exempt, as POSTBACK_ALLOWED_NETWORKS would name it.
    transport = fast(allowed_networks=(ipaddress.ip_network("127.0.0.2/32"),))
    assert deliver(committed_db, settings, transport=transport) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        (attempt,) = attempts(s, row.id)
        assert (row.status, row.last_status_code) == ("pending", 302)
        assert (attempt.status_code, attempt.error, attempt.address) == (
            302,
            "HTTP 302 (redirect not followed)",
            "127.0.0.2",
        )
    assert (first_hop.connections, victim.connections) == (1, 0)


HOSTILE = {
    "sub1": "1&payout=9#x",
    "sub2": "a\r\nSet-Cookie: x=1\r\n\r\nb",
    "sub3": "%0d%0a" + "z" * 10_000,
    "sub4": "{click_id}",
    "sub5": "é/?;=+ ",
}


@pytest.mark.parametrize("method", ["get", "post"])
def test_hostile_values_arrive_as_one_encoded_value(committed_db, settings, endpoint, method: str):
    template = endpoint.url("/cb?p={payout}&a={sub1}&b={sub2}&c={sub3}&d={sub4}&e={sub5}&t={txn_id}")
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=template, postback_method=method, share_txn_id=True)
        conversion = make_conversion(s, scene, txn_id="1&payout=9#x\r\n", payout_minor=500, click_subs=HOSTILE)
        click_id = conversion.click_id
    assert deliver(committed_db, settings) == 1
    (request,) = endpoint.requests
    assert "\r" not in request.target and "\n" not in request.target and "#" not in request.target
    query = request.query
    assert sorted(query) == ["a", "b", "c", "d", "e", "p", "t"]
    assert {k: v for k, v in query.items()} == {
        "p": ["5.00"],
        "a": [HOSTILE["sub1"]],
        "b": [HOSTILE["sub2"]],
        "c": [HOSTILE["sub3"]],
        "d": ["{click_id}"],  # a macro inside a value is not expanded again
        "e": [HOSTILE["sub5"]],
        "t": ["1&payout=9#x\r\n"],
    }
    assert click_id not in request.target
    if method == "post":
        data = json.loads(request.body)["data"]
        assert {name: data[name] for name in HOSTILE} == HOSTILE and data["payout"] == "5.00"


def test_a_url_the_job_cannot_render_safely_is_stopped_without_a_connection(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        scene = make_scene(s)
        # A template that bypassed validation (written straight to the database).
        s.get(Partner, scene.partner_id).postback_url = "http://{sub1}.example/cb"
        make_conversion(s, scene, click_subs={"sub1": "127.0.0.1"})
    assert deliver(committed_db, settings) == 0
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert row.status == "failed" and "macro not allowed in host" in row.last_error
    assert endpoint.connections == 0
