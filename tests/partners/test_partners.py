"""Partners: onboarding, status, profile, and a postback URL validated at save (RELIABILITY.md case 13)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from network.app import create_app
from tests.conftest import make_settings
from tests.factories import Api, make_key, make_partner
from tests.snapshots import snapshot

#: A global address, so that validation needs no DNS (tests never reach the internet).
PUBLIC = "93.184.216.34"


@pytest.fixture
def admin(client, session) -> Api:
    return Api(client, make_key(session, role="admin"))


@pytest.fixture
def partner(session):
    p = make_partner(session)
    session.flush()
    return p


@pytest.fixture
def as_partner(client, session, partner) -> Api:
    return Api(client, make_key(session, role="partner", partner=partner))


def test_admin_onboards_an_active_partner(admin):
    r = admin.post("/api/v1/partners", json={"name": "Deal Blog", "email": "ops@dealblog.example"})
    assert r.status_code == 201, r.json
    assert r.json["status"] == "active" and r.json["email"] == "ops@dealblog.example"
    assert r.json["postback_url"] is None and r.json["stripe_account_id"] is None
    assert "postback_secret" not in r.json


def test_a_partner_may_start_pending_and_be_activated_or_suspended(admin):
    partner_id = admin.post("/api/v1/partners", json={"name": "New", "status": "pending"}).json["id"]
    for status in ("active", "suspended", "pending", "active"):
        r = admin.post(f"/api/v1/partners/{partner_id}/status", json={"status": status})
        assert r.status_code == 200 and r.json["status"] == status
    r = admin.post(f"/api/v1/partners/{partner_id}/status", json={"status": "deleted"})
    assert r.status_code == 400 and "status" in r.json["errors"]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"name": ""}, "name"), ({"email": "not-an-email"}, "email"), ({"name": "N", "status": "gone"}, "status")],
)
def test_a_bad_partner_is_refused_naming_the_field(admin, body, field):
    r = admin.post("/api/v1/partners", json=body)
    assert r.status_code == 400 and field in r.json["errors"], r.json


def test_a_partner_sets_a_safe_postback_url(as_partner, partner):
    url = f"https://{PUBLIC}/pb?click={{click_id}}&payout={{payout}}&cur={{currency}}&s={{sub1}}"
    r = as_partner.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": url, "postback_method": "post"})
    assert r.status_code == 200, r.json
    assert r.json["postback_url"] == url and r.json["postback_method"] == "post"


@pytest.mark.parametrize("empty", ["", "   ", None])
def test_an_empty_postback_url_removes_it(as_partner, partner, session, empty):
    as_partner.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": f"https://{PUBLIC}/pb"})
    r = as_partner.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": empty})
    assert r.status_code == 200 and r.json["postback_url"] is None


#: RELIABILITY.md case 13, and what the message must name.
UNSAFE = [
    ("https://127.0.0.1/pb", "loopback"),
    ("https://localhost/pb", "loopback"),
    ("https://[::1]/pb", "loopback"),
    ("https://[::ffff:127.0.0.1]/pb", "loopback"),
    ("https://169.254.169.254/latest/meta-data", "metadata"),
    ("https://10.0.0.1/pb", "private"),
    ("https://192.168.1.10/pb", "private"),
    ("https://100.64.0.1/pb", "carrier-grade NAT"),
    ("https://0.0.0.0/pb", "unspecified"),
    ("https://2130706433/pb", "numeric host"),
    ("https://0x7f.1/pb", "numeric host"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com/", "scheme"),
    ("http://127.0.0.1/pb", "scheme"),
    (f"https://user:secret@{PUBLIC}/pb", "userinfo"),
    ("https://{sub1}.evil.example/pb", "macro"),
    (f"https://{PUBLIC}:{{sub1}}/pb", "macro"),
    (f"https://{PUBLIC}/pb?c={{unknown_macro}}", "unknown macro"),
]


@pytest.mark.parametrize(("url", "problem"), UNSAFE, ids=[u for u, _ in UNSAFE])
def test_an_unsafe_postback_url_is_refused_at_save_naming_the_problem(as_partner, partner, session, url, problem):
    before = snapshot(session)
    r = as_partner.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": url})
    assert r.status_code == 400, r.json
    assert r.json["code"] == "unsafe_url" and "postback_url" in r.json["errors"]
    assert problem in r.json["message"], r.json["message"]
    assert snapshot(session) == before


def test_plain_http_only_where_the_operator_allows_it_and_never_to_loopback(settings, db, session, partner):
    app = create_app(make_settings(settings.database_url, postback_allow_http=True), database=db)
    api = Api(app.test_client(), make_key(session, role="partner", partner=partner))
    r = api.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": f"http://{PUBLIC}/pb"})
    assert r.status_code == 200, r.json
    r = api.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": "http://127.0.0.1/pb"})
    assert r.status_code == 400 and "loopback" in r.json["message"]


def test_an_allowed_network_lets_an_operator_reach_its_own_host(settings, db, session, partner):
    app = create_app(make_settings(settings.database_url, postback_allowed_networks=("10.1.0.0/16",)), database=db)
    api = Api(app.test_client(), make_key(session, role="partner", partner=partner))
    assert api.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": "https://10.1.2.3/pb"}).status_code == 200
    assert api.patch(f"/api/v1/partners/{partner.id}", json={"postback_url": "https://10.2.0.1/pb"}).status_code == 400


def test_only_an_admin_sets_a_partners_payout_threshold(admin, as_partner, partner):
    r = as_partner.patch(f"/api/v1/partners/{partner.id}", json={"payout_min_amount": "10.00"})
    assert r.status_code == 400 and "payout_min_amount" in r.json["errors"]
    r = admin.patch(f"/api/v1/partners/{partner.id}", json={"payout_min_amount": "100.00"})
    assert r.status_code == 200 and r.json["payout_min_amount"] == "100.00"
    for bad in ("abc", "1e3", "-5", "10.005"):
        r = admin.patch(f"/api/v1/partners/{partner.id}", json={"payout_min_amount": bad})
        assert r.status_code == 400 and "payout_min_amount" in r.json["errors"], bad
    r = admin.patch(f"/api/v1/partners/{partner.id}", json={"payout_min_amount": None})
    assert r.status_code == 200 and r.json["payout_min_amount"] is None


def test_the_postback_secret_is_read_and_rotated_by_the_partner(as_partner, partner, session):
    first = as_partner.get(f"/api/v1/partners/{partner.id}/postback-secret")
    assert first.status_code == 200 and first.json["postback_secret"].startswith("whsec_")
    rotated = as_partner.post(f"/api/v1/partners/{partner.id}/postback-secret")
    assert rotated.status_code == 200 and rotated.json["postback_secret"] != first.json["postback_secret"]
    assert as_partner.get(f"/api/v1/partners/{partner.id}/postback-secret").json == rotated.json


def test_partners_list_filters_by_status_and_pages(admin, session):
    ids = [make_partner(session, name=f"P{i}", status="active" if i % 2 else "pending").id for i in range(5)]
    session.flush()
    pending = admin.get("/api/v1/partners?status=pending").json["items"]
    assert [p["id"] for p in pending] == ids[0::2]
    page = admin.get("/api/v1/partners?limit=2").json
    assert len(page["items"]) == 2 and page["next_after"] == ids[1]
    assert admin.get("/api/v1/partners?status=banned").status_code == 400


def test_finance_reads_partners_but_not_their_secrets(client, session, partner):
    finance = Api(client, make_key(session, role="finance"))
    assert finance.get(f"/api/v1/partners/{partner.id}").status_code == 200
    assert [p["id"] for p in finance.get("/api/v1/partners").json["items"]] == [partner.id]
    assert finance.get(f"/api/v1/partners/{partner.id}/postback-secret").status_code == 403
    count = session.execute(text("SELECT count(*) FROM partners")).scalar()
    assert count == 1


def test_an_admin_may_reject_a_partner_and_list_the_rejected(admin):
    partner_id = admin.post("/api/v1/partners", json={"name": "New", "status": "pending"}).json["id"]
    r = admin.post(f"/api/v1/partners/{partner_id}/status", json={"status": "rejected"})
    assert r.status_code == 200 and r.json["status"] == "rejected"
    assert [p["id"] for p in admin.get("/api/v1/partners?status=rejected").json["items"]] == [partner_id]
