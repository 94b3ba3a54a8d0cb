"""The partner postback API: the delivery log, retries, tests, per-offer URLs and disabled URLs."""

from __future__ import annotations

import pytest

from network.accounts.models import Brand
from network.deliveries.models import OfferPostback, PostbackAttempt, PostbackDelivery, PostbackDisable
from network.deliveries.targets import disable_url
from network.partners.models import Partner
from tests.deliveries.conftest import deliver, deliveries, make_conversion, make_scene
from tests.deliveries.endpoints import respond
from tests.factories import Api, make_key, make_offer

URL = "https://partner.example/cb?c={click_id}"


@pytest.fixture
def two(session, client):
    """Two partners with a delivery each, and API clients for them, an admin, finance and a brand."""
    a, b = make_scene(session, postback_url=URL), make_scene(session, postback_url=URL)
    make_conversion(session, a)
    make_conversion(session, b)
    keys = {
        "a": make_key(session, role="partner", partner=session.get(Partner, a.partner_id)),
        "b": make_key(session, role="partner", partner=session.get(Partner, b.partner_id)),
        "admin": make_key(session, role="admin"),
        "finance": make_key(session, role="finance"),
    }
    apis = {name: Api(client, key) for name, key in keys.items()}
    return a, b, apis


def test_a_partner_lists_only_its_own_deliveries(two):
    a, b, api = two
    mine = api["a"].get("/api/v1/postback-deliveries")
    assert mine.status_code == 200
    assert [d["partner_id"] for d in mine.json["items"]] == [a.partner_id]
    assert api["a"].get(f"/api/v1/postback-deliveries?partner_id={b.partner_id}").json["items"] == []
    everyone = api["admin"].get("/api/v1/postback-deliveries").json["items"]
    assert {d["partner_id"] for d in everyone} == {a.partner_id, b.partner_id}
    assert len(api["finance"].get("/api/v1/postback-deliveries").json["items"]) == 2


def test_delivery_list_filters_and_pages(two, session):
    _a, b, api = two
    session.query(PostbackDelivery).filter_by(partner_id=b.partner_id).update({"status": "dead"})
    session.flush()
    dead = api["admin"].get("/api/v1/postback-deliveries?status=dead").json["items"]
    assert [d["partner_id"] for d in dead] == [b.partner_id] and dead[0]["next_attempt_at"] is None
    first = api["admin"].get("/api/v1/postback-deliveries?limit=1").json
    assert len(first["items"]) == 1 and first["next_after"] == first["items"][0]["id"]
    rest = api["admin"].get(f"/api/v1/postback-deliveries?limit=1&after={first['next_after']}").json
    assert rest["items"][0]["id"] > first["items"][0]["id"]
    assert api["admin"].get("/api/v1/postback-deliveries?status=lost").status_code == 400
    assert api["admin"].get("/api/v1/postback-deliveries?limit=100000").status_code == 400
    assert api["admin"].get("/api/v1/postback-deliveries?sort=id;drop").status_code == 400


def test_brands_may_not_read_partner_postbacks(two, session, client):
    a, _b, _api = two
    brand = Api(client, make_key(session, role="brand", brand=session.get(Brand, a.brand_id)))
    assert brand.get("/api/v1/postback-deliveries").status_code == 403
    (row,) = deliveries(session, partner_id=a.partner_id)
    assert brand.get(f"/api/v1/postback-deliveries/{row.id}").status_code == 403
    assert Api(client, None).get("/api/v1/postback-deliveries").status_code == 401


def test_a_delivery_shows_its_attempts_and_is_hidden_from_other_partners(two, session):
    a, _b, api = two
    (row,) = deliveries(session, partner_id=a.partner_id)
    session.add(
        PostbackAttempt(
            delivery_id=row.id,
            number=1,
            at=row.created_at,
            method="get",
            url="https://partner.example/cb?c=x",
            status_code=500,
            latency_ms=12,
            error="HTTP 500",
        )
    )
    session.flush()
    r = api["a"].get(f"/api/v1/postback-deliveries/{row.id}")
    assert r.status_code == 200
    assert r.json["webhook_id"] == row.webhook_id and r.json["macros"]["status"] == "approved"
    assert [(x["number"], x["status_code"], x["error"], x["latency_ms"]) for x in r.json["attempt_log"]] == [
        (1, 500, "HTTP 500", 12)
    ]
    assert api["b"].get(f"/api/v1/postback-deliveries/{row.id}").status_code == 404
    assert api["b"].post(f"/api/v1/postback-deliveries/{row.id}/retry").status_code == 404
    assert api["a"].get("/api/v1/postback-deliveries/999999").status_code == 404


@pytest.mark.parametrize(("status", "code"), [("pending", 409), ("delivered", 409), ("dead", 200), ("failed", 200)])
def test_only_failed_or_dead_deliveries_can_be_retried(two, session, status: str, code: int):
    a, _b, api = two
    (row,) = deliveries(session, partner_id=a.partner_id)
    row.status, row.attempts, row.max_attempts = status, 10, 10
    session.flush()
    r = api["a"].post(f"/api/v1/postback-deliveries/{row.id}/retry")
    assert r.status_code == code, r.json
    if code == 200:
        assert (r.json["status"], r.json["attempts"], r.json["max_attempts"]) == ("pending", 10, 11)
        assert r.json["next_attempt_at"] is not None
        # Asked twice: the second finds it pending.
        assert api["a"].post(f"/api/v1/postback-deliveries/{row.id}/retry").status_code == 409
    else:
        assert r.json["code"] == "conflict"
        assert deliveries(session, id=row.id)[0].status == status
    assert api["finance"].post(f"/api/v1/postback-deliveries/{row.id}/retry").status_code == 403


def test_a_retried_dead_delivery_gets_exactly_one_more_attempt(committed_app, committed_db, settings, endpoints):
    down = endpoints(behaviour=respond(500))
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=down.url("/cb"))
        make_conversion(s, scene)
        s.query(PostbackDelivery).update({"attempts": 10, "status": "dead"})
        key = make_key(s, role="partner", partner=s.get(Partner, scene.partner_id))
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
    api = Api(committed_app.test_client(), key)
    assert api.post(f"/api/v1/postback-deliveries/{row.id}/retry").status_code == 200
    assert deliver(committed_db, settings) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert (row.status, row.attempts, row.last_status_code) == ("dead", 11, 500)
    down.behaviour = respond(200)
    assert api.post(f"/api/v1/postback-deliveries/{row.id}/retry").status_code == 200
    assert deliver(committed_db, settings) == 1
    with committed_db.session_scope() as s:
        assert deliveries(s)[0].status == "delivered"
    assert down.connections == 2


# ---- per-offer URLs ------------------------------------------------------------------------------


@pytest.fixture
def partner(session, client):
    scene = make_scene(session)
    key = make_key(session, role="partner", partner=session.get(Partner, scene.partner_id))
    return scene, Api(client, key)


def test_per_offer_url_crud(partner, session, endpoint):
    scene, api = partner
    base = f"/api/v1/partners/{scene.partner_id}/offer-postbacks"
    url = endpoint.url("/o?c={click_id}&token=abc")
    r = api.post(base, json={"offer_id": scene.offer_id, "url": url})
    assert r.status_code == 201, r.json
    assert (r.json["offer_id"], r.json["url"], r.json["method"], r.json["disabled"]) == (
        scene.offer_id,
        url,
        "get",
        None,
    )
    ident = r.json["id"]
    assert api.post(base, json={"offer_id": scene.offer_id, "url": url}).status_code == 409
    assert [x["id"] for x in api.get(base).json["items"]] == [ident]
    r = api.patch(f"{base}/{ident}", json={"method": "post", "url": endpoint.url("/p")})
    assert (r.status_code, r.json["method"], r.json["url"]) == (200, "post", endpoint.url("/p"))
    assert api.patch(f"{base}/{ident}", json={"partner_id": 1}).status_code == 400
    assert api.delete(f"{base}/{ident}").status_code == 204
    assert api.get(f"{base}/{ident}").status_code == 404
    assert session.query(OfferPostback).count() == 0


def test_per_offer_url_only_for_offers_the_partner_may_run(partner, session, endpoint):
    scene, api = partner
    brand = session.get(Brand, scene.brand_id)
    draft = make_offer(session, brand=brand, status="draft")
    private = make_offer(session, brand=brand, visibility="private")
    approval = make_offer(session, brand=brand, visibility="approval")
    base = f"/api/v1/partners/{scene.partner_id}/offer-postbacks"
    for hidden in (draft, private):
        assert api.post(base, json={"offer_id": hidden.id, "url": endpoint.url("/o")}).status_code == 404
    r = api.post(base, json={"offer_id": approval.id, "url": endpoint.url("/o")})
    assert r.status_code == 400 and list(r.json["errors"]) == ["offer_id"]
    assert api.post(base, json={"offer_id": 999999, "url": endpoint.url("/o")}).status_code == 404
    assert session.query(OfferPostback).count() == 0


def test_per_offer_urls_of_another_partner_are_not_found(partner, session, client, endpoint):
    scene, api = partner
    other = make_scene(session)
    row = OfferPostback(partner_id=other.partner_id, offer_id=other.offer_id, url=endpoint.url("/o"))
    session.add(row)
    session.flush()
    theirs = f"/api/v1/partners/{other.partner_id}/offer-postbacks"
    assert api.get(theirs).status_code == 404
    assert api.post(theirs, json={"offer_id": other.offer_id, "url": endpoint.url("/x")}).status_code == 404
    assert api.delete(f"{theirs}/{row.id}").status_code == 404
    mine = f"/api/v1/partners/{scene.partner_id}/offer-postbacks/{row.id}"
    assert api.patch(mine, json={"url": endpoint.url("/x")}).status_code == 404
    admin = Api(client, make_key(session, role="admin"))
    r = admin.post(
        theirs.replace(str(other.partner_id), str(scene.partner_id)),
        json={"offer_id": scene.offer_id, "url": endpoint.url("/a")},
    )
    assert r.status_code == 201 and r.json["partner_id"] == scene.partner_id


# ---- tests and disabled URLs ---------------------------------------------------------------------


def test_postback_test_calls_the_url_now_and_reports_the_answer(partner, session, endpoints):
    scene, api = partner
    ok = endpoints(behaviour=respond(200, b"thanks"))
    api.patch(f"/api/v1/partners/{scene.partner_id}", json={"postback_url": ok.url("/cb?c={click_id}&key=s3cret")})
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={})
    assert r.status_code == 200, r.json
    assert (r.json["ok"], r.json["status_code"], r.json["error"], r.json["response_excerpt"]) == (
        True,
        200,
        None,
        "thanks",
    )
    assert r.json["url"] == ok.url("/cb?c=test&key=***") and r.json["method"] == "GET"
    assert ok.requests[0].one("c") == "test" and ok.requests[0].one("key") == "s3cret"
    assert session.query(PostbackDelivery).count() == 0  # a test is not a delivery


def test_postback_test_reports_failures(partner, session, endpoints):
    scene, api = partner
    down = endpoints(behaviour=respond(500, b"boom"))
    partner_row = session.get(Partner, scene.partner_id)
    partner_row.postback_url, partner_row.postback_method = down.url("/cb"), "post"
    session.flush()
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={})
    assert (r.json["ok"], r.json["status_code"], r.json["error"], r.json["method"]) == (False, 500, "HTTP 500", "POST")
    assert "webhook-signature" in down.requests[0].headers


def test_postback_test_never_reaches_a_non_global_address(partner, session, endpoints):
    scene, api = partner
    # Listening on a loopback address the operator did not exempt (only 127.0.0.1 is).
    internal = endpoints("127.0.0.2")
    session.get(Partner, scene.partner_id).postback_url = internal.url("/admin")
    session.flush()
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={})
    assert r.status_code == 200 and r.json["ok"] is False
    assert r.json["error"] == "blocked: host is a non-global address 127.0.0.2 (loopback)"
    assert internal.connections == 0


def test_postback_test_needs_a_url(partner):
    scene, api = partner
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={})
    assert r.status_code == 400 and r.json["errors"] == {"postback_url": [r.json["message"]]}
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={"offer_id": scene.offer_id})
    assert r.status_code == 404


def test_postback_test_of_a_per_offer_url(partner, session, endpoint):
    scene, api = partner
    api.post(
        f"/api/v1/partners/{scene.partner_id}/offer-postbacks",
        json={"offer_id": scene.offer_id, "url": endpoint.url("/o?o={offer_id}")},
    )
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={"offer_id": scene.offer_id})
    assert r.json["ok"] is True and endpoint.requests[0].one("o") == str(scene.offer_id)


def test_disabled_urls_are_listed_and_can_be_enabled_again(partner, session, endpoint):
    scene, api = partner
    url = endpoint.url("/cb")
    session.get(Partner, scene.partner_id).postback_url = url
    disable_url(
        session, partner_id=scene.partner_id, target="global", template=url, reason="answered 410", delivery_id=7
    )
    base = f"/api/v1/partners/{scene.partner_id}/postback-disables"
    (item,) = api.get(base).json["items"]
    assert (item["target"], item["url"], item["reason"], item["delivery_id"]) == ("global", url, "answered 410", 7)
    assert api.delete(f"{base}/{item['id']}").status_code == 204
    assert api.get(base).json["items"] == []
    assert api.delete(f"{base}/{item['id']}").status_code == 404


def test_a_successful_test_enables_a_disabled_url_again(partner, session, endpoint):
    scene, api = partner
    url = endpoint.url("/cb")
    session.get(Partner, scene.partner_id).postback_url = url
    disable_url(session, partner_id=scene.partner_id, target="global", template=url, reason="410", delivery_id=None)
    r = api.post(f"/api/v1/partners/{scene.partner_id}/postback-test", json={})
    assert r.json["ok"] is True and r.json["enabled_again"] is True
    assert session.query(PostbackDisable).count() == 0


def test_per_offer_url_shows_when_it_is_disabled(partner, session, endpoint):
    scene, api = partner
    base = f"/api/v1/partners/{scene.partner_id}/offer-postbacks"
    created = api.post(base, json={"offer_id": scene.offer_id, "url": endpoint.url("/o")}).json
    disable_url(
        session,
        partner_id=scene.partner_id,
        target=f"offer:{created['id']}",
        template=created["url"],
        reason="answered 410",
        delivery_id=None,
    )
    assert api.get(f"{base}/{created['id']}").json["disabled"]["reason"] == "answered 410"
    # Changing the URL enables it again.
    changed = api.patch(f"{base}/{created['id']}", json={"url": endpoint.url("/o2")}).json
    assert changed["disabled"] is None


def test_per_offer_urls_and_disabled_urls_are_paged_like_every_list(partner, session, endpoint):
    scene, api = partner
    brand = session.get(Brand, scene.brand_id)
    second = make_offer(session, brand=brand)
    for offer_id in (scene.offer_id, second.id):
        session.add(OfferPostback(partner_id=scene.partner_id, offer_id=offer_id, url=endpoint.url(f"/o{offer_id}")))
        disable_url(
            session,
            partner_id=scene.partner_id,
            target=f"offer:{offer_id}",
            template=endpoint.url(f"/o{offer_id}"),
            reason="answered 410",
            delivery_id=None,
        )
    session.flush()
    for path in ("offer-postbacks", "postback-disables"):
        base = f"/api/v1/partners/{scene.partner_id}/{path}"
        everything = [x["id"] for x in api.get(base).json["items"]]
        first = api.get(f"{base}?limit=1").json
        assert (len(everything), first["limit"], [x["id"] for x in first["items"]]) == (2, 1, everything[:1])
        rest = api.get(f"{base}?limit=1&after={first['next_after']}").json
        assert [x["id"] for x in rest["items"]] == everything[1:], path
        assert api.get(f"{base}?limit=1&after={rest['next_after']}").json == {
            "items": [],
            "limit": 1,
            "next_after": None,
        }
