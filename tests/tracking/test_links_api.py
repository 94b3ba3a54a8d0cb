"""POST/GET /api/v1/links: who may take links, for which offers, and what each party sees."""

from __future__ import annotations

import pytest

from network.auth import SYSTEM
from network.offers import service as offers
from tests.factories import Api, make_brand, make_key, make_offer, make_partner

HOSTILE_DEEP_LINKS = [
    "https://evil.example/",
    "https://brand.example.evil.example/",
    "brand.example.evil.example",
    "https://brand.example@evil.example/",
    "https://brand.example:pw@brand.example/",
    "//evil.example/",
    "//brand.example/",
    "javascript:alert(1)",
    "JavaScript://brand.example/%0aalert(1)",
    "data:text/html,hi",
    "https://brand.example/\r\nSet-Cookie: x=1",
    "https://brand.example/%0d%0a\nx",
    "https://brand.example\\@evil.example/",
    "https://evil.example\\.brand.example/",
    "https://brand.example%2eevil.example/",
    "ftp://brand.example/",
    "https://[::1]/",
    "https://brand.example:99999/",
]


def test_partner_takes_a_link_with_the_spec_fields(client, session, world):
    r = world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id, "sub1": "spring"})
    assert r.status_code == 201, r.json
    body = r.json
    assert body["url"] == f"http://localhost/c/{body['code']}"
    assert body["offer_id"] == world.offer.id and body["partner_id"] == world.partner.id
    assert body["sub1"] == "spring" and body["sub2"] is None
    assert len(body["code"]) >= 12 and body["code"].replace("-", "").replace("_", "").isalnum()
    again = world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id}).json
    assert again["code"] != body["code"]


def test_links_need_an_offer_the_partner_may_run(client, session, world):
    approval = make_offer(session, brand=world.brand, name="Approval", visibility="approval")
    private = make_offer(session, brand=world.brand, name="Private", visibility="private")
    paused = make_offer(session, brand=world.brand, name="Paused", status="paused")
    assert world.partner_api.post("/api/v1/links", json={"offer_id": approval.id}).status_code == 403
    assert world.partner_api.post("/api/v1/links", json={"offer_id": private.id}).status_code == 404
    assert world.partner_api.post("/api/v1/links", json={"offer_id": paused.id}).status_code == 404
    assert world.partner_api.post("/api/v1/links", json={"offer_id": 999_999}).status_code == 404
    access = offers.apply_to_offer(
        session, offers.Principal(offers.Role.PARTNER, partner_id=world.partner.id), approval.id
    )
    offers.decide_access(session, SYSTEM, approval.id, access.id, "approve")
    offers.invite(session, SYSTEM, private.id, world.partner.id)
    assert world.partner_api.post("/api/v1/links", json={"offer_id": approval.id}).status_code == 201
    assert world.partner_api.post("/api/v1/links", json={"offer_id": private.id}).status_code == 201


def test_only_partners_take_links_and_clients_cannot_set_owner_fields(client, session, world):
    brand_api = Api(client, make_key(session, role="brand", brand=world.brand))
    assert brand_api.post("/api/v1/links", json={"offer_id": world.offer.id}).status_code == 403
    assert Api(client, None).post("/api/v1/links", json={"offer_id": world.offer.id}).status_code == 401
    for extra in ({"partner_id": 7}, {"code": "mine"}, {"id": 3}, {"url": "https://shop.example/"}):
        r = world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id, **extra})
        assert r.status_code in (400, 422), (extra, r.json)
    assert world.partner_api.post(
        "/api/v1/links", json={"offer_id": world.offer.id, "sub1": "x" * 256}
    ).status_code in (400, 422)


@pytest.mark.parametrize("deep_link", HOSTILE_DEEP_LINKS)
def test_hostile_deep_links_are_refused_at_link_creation(client, session, world, deep_link):
    offers.update_offer(session, SYSTEM, world.offer.id, {"allowed_domains": ["brand.example", "shop.example"]})
    r = world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id, "deep_link": deep_link})
    assert r.status_code == 400, r.json
    assert "deep_link" in r.json["errors"]


def test_an_allowed_deep_link_is_kept_normalised(client, session, world):
    r = world.partner_api.post(
        "/api/v1/links", json={"offer_id": world.offer.id, "deep_link": "HTTPS://Shop.Example./p/1?x=1#top"}
    )
    assert r.status_code == 201, r.json
    assert r.json["deep_link"] == "https://shop.example/p/1?x=1#top"


def test_list_and_read_show_only_own_links_with_paging(client, session, world):
    other = make_partner(session, name="Other")
    other_api = Api(client, make_key(session, role="partner", partner=other))
    mine = [world.partner_api.post("/api/v1/links", json={"offer_id": world.offer.id}).json["id"] for _ in range(3)]
    theirs = other_api.post("/api/v1/links", json={"offer_id": world.offer.id}).json["id"]

    page1 = world.partner_api.get("/api/v1/links?limit=2").json
    assert [i["id"] for i in page1["items"]] == mine[:2] and page1["next_after"] == mine[1]
    page2 = world.partner_api.get(f"/api/v1/links?limit=2&after={page1['next_after']}").json
    assert [i["id"] for i in page2["items"]] == mine[2:] and page2["next_after"] is None
    assert world.partner_api.get(f"/api/v1/links/{theirs}").status_code == 404
    assert world.partner_api.get(f"/api/v1/links/{mine[0]}").json["id"] == mine[0]
    assert world.partner_api.get("/api/v1/links?limit=100000").status_code in (400, 422)

    brand_api = Api(client, make_key(session, role="brand", brand=world.brand))
    assert len(brand_api.get("/api/v1/links").json["items"]) == 4
    stranger = Api(client, make_key(session, role="brand", brand=make_brand(session, name="Else")))
    assert stranger.get("/api/v1/links").json["items"] == []
    assert stranger.get(f"/api/v1/links/{mine[0]}").status_code == 404
