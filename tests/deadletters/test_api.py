"""Dead letters through the API: admin and finance read them, partners and brands get 403."""

from __future__ import annotations

import pytest

from network.deadletters import isolate
from tests.factories import Api, make_brand, make_key, make_partner


@pytest.fixture
def kept(session):
    """Three dead letters: two of clicks, one of postbacks."""
    isolate.keep_in(session, "clicks", "DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes",
                    {"id": "c1", "sub1": "a\x00b"})  # fmt: skip
    isolate.keep_in(session, "postbacks", "IntegrityError: CHECK constraint failed: amount", {"txn_id": "T-1"})
    isolate.keep_in(session, "clicks", "IntegrityError: FOREIGN KEY constraint failed", {"id": "c2"})
    session.flush()


def test_admin_lists_dead_letters_with_their_reason_and_row(client, session, kept):
    admin = Api(client, make_key(session, role="admin"))
    r = admin.get("/api/v1/dead-letters")
    assert r.status_code == 200
    body = r.get_json()
    assert set(body) == {"items", "limit", "next_after"} and body["next_after"] is None and body["limit"] == 100
    assert [(i["source"], i["reason"].split(":")[0]) for i in body["items"]] == [
        ("clicks", "DataError"),
        ("postbacks", "IntegrityError"),
        ("clicks", "IntegrityError"),
    ]
    first = body["items"][0]
    assert first["payload"] == '{"id":"c1","sub1":"a\\u0000b"}' and first["created_at"].endswith("+00:00")
    assert admin.get(f"/api/v1/dead-letters/{first['id']}").get_json() == first


def test_dead_letters_filter_by_writer_and_page_by_id(client, session, kept):
    admin = Api(client, make_key(session, role="admin"))
    clicks = admin.get("/api/v1/dead-letters", query_string={"source": "clicks"}).get_json()["items"]
    assert [i["payload"] for i in clicks] == ['{"id":"c1","sub1":"a\\u0000b"}', '{"id":"c2"}']
    page = admin.get("/api/v1/dead-letters", query_string={"limit": 2}).get_json()
    assert len(page["items"]) == 2 and page["next_after"] == page["items"][-1]["id"]
    rest = admin.get("/api/v1/dead-letters", query_string={"limit": 2, "after": page["next_after"]}).get_json()
    assert [i["source"] for i in rest["items"]] == ["clicks"] and rest["next_after"] is None


def test_dead_letters_are_counted_by_writer(client, session, kept):
    finance = Api(client, make_key(session, role="finance"))
    r = finance.get("/api/v1/dead-letters/summary")
    assert r.status_code == 200
    assert r.get_json() == {
        "counts": {"clicks": 2, "impressions": 0, "postbacks": 1, "outbox": 0, "delivery_log": 0},
        "total": 3,
    }


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/dead-letters", {"source": "nope"}),
        ("/api/v1/dead-letters", {"sort": "id"}),
        ("/api/v1/dead-letters", {"limit": 10_000}),
        ("/api/v1/dead-letters/summary", {"x": "1"}),
        ("/api/v1/dead-letters/1", {"x": "1"}),
    ],
)
def test_bad_query_parameters_are_400(client, session, path, query):
    r = Api(client, make_key(session, role="admin")).get(path, query_string=query)
    assert r.status_code == 400, r.get_json()


def test_an_unknown_dead_letter_is_404(client, session):
    assert Api(client, make_key(session, role="admin")).get("/api/v1/dead-letters/999999").status_code == 404


@pytest.mark.parametrize("role", ["partner", "brand"])
@pytest.mark.parametrize("path", ["/api/v1/dead-letters", "/api/v1/dead-letters/summary", "/api/v1/dead-letters/1"])
def test_partners_and_brands_may_not_read_dead_letters(client, session, kept, role, path):
    tenant = {"partner": make_partner(session)} if role == "partner" else {"brand": make_brand(session)}
    r = Api(client, make_key(session, role=role, **tenant)).get(path)
    assert r.status_code == 403
    assert Api(client, None).get(path).status_code == 401
