"""The delivery job against real local partner endpoints: success, signing, retries, 410, 429, caps."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

from sqlalchemy import update

from network.clock import now_utc
from network.deliveries.models import PostbackDelivery, PostbackDisable
from network.partners.models import Partner
from network.tracking.models import Click
from tests.deliveries.conftest import attempts, deliver, deliveries, make_conversion, make_scene
from tests.deliveries.endpoints import huge, respond

ALL_MACROS = (
    "/cb?c={click_id}&v={conversion_id}&o={offer_id}&e={event}&p={payout}&cur={currency}&s={status}"
    "&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}&t={txn_id}&token=partner-secret"
)


def due_after(row: PostbackDelivery) -> dt.datetime:
    """Return a moment just after a delivery's next attempt is due."""
    return row.next_attempt_at + dt.timedelta(seconds=1)


def test_get_delivery_fills_every_macro_and_is_logged(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url(ALL_MACROS), share_txn_id=True, link_subs={"sub2": "L2"})
        conversion = make_conversion(s, scene, txn_id="T-1", payout_minor=1250, click_subs={"sub1": "C1"})
        conversion_id, click_id = conversion.id, conversion.click_id
    assert deliver(committed_db, settings) == 1
    (request,) = endpoint.requests
    assert request.method == "GET"
    assert {k: v[0] for k, v in request.query.items()} == {
        "c": click_id,
        "v": str(conversion_id),
        "o": str(scene.offer_id),
        "e": "sale",
        "p": "12.50",
        "cur": "USD",
        "s": "approved",
        "s1": "C1",
        "s2": "L2",
        "s3": "",
        "s4": "",
        "s5": "",
        "t": "T-1",
        "token": "partner-secret",
    }
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert request.headers["webhook-id"] == row.webhook_id
        assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("delivered", 1, 200, None)
        assert row.delivered_at is not None and row.lease_token is None
        (attempt,) = attempts(s, row.id)
        assert (attempt.number, attempt.status_code, attempt.error, attempt.address) == (1, 200, None, "127.0.0.1")
        assert attempt.latency_ms >= 0 and attempt.response_excerpt == "ok" and attempt.recorded
        # The partner's own secret in its URL is masked in the log.
        assert "token=***" in attempt.url and "partner-secret" not in attempt.url
        assert row.url == attempt.url


def test_a_delivered_row_is_never_sent_again(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=endpoint.url("/cb?c={click_id}")))
    assert deliver(committed_db, settings) == 1
    far = now_utc() + dt.timedelta(days=30)
    assert deliver(committed_db, settings) == 0
    assert deliver(committed_db, settings, now=far) == 0
    assert endpoint.connections == 1


def test_post_delivery_is_json_signed_with_standard_webhooks_headers(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url("/hook?c={click_id}"), postback_method="post")
        conversion = make_conversion(s, scene)
        secret = s.get(Partner, scene.partner_id).postback_secret
        conversion_id = conversion.id
    before = int(now_utc().timestamp())
    assert deliver(committed_db, settings) == 1
    (request,) = endpoint.requests
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    webhook_id, timestamp = request.headers["webhook-id"], request.headers["webhook-timestamp"]
    assert before - 1 <= int(timestamp) <= int(now_utc().timestamp()) + 1
    # Verified as a Standard Webhooks library would: key = base64 of what follows whsec_.
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + request.body, hashlib.sha256).digest()
    assert request.headers["webhook-signature"] == "v1," + base64.b64encode(expected).decode()
    payload = json.loads(request.body)
    assert payload["type"] == "conversion.created" and payload["id"] == webhook_id
    assert payload["data"]["conversion_id"] == str(conversion_id) and payload["data"]["status"] == "approved"
    assert request.one("c") == payload["data"]["click_id"]


def test_webhook_id_is_the_same_on_every_retry(committed_db, settings, endpoint):
    endpoint.behaviours = [respond(503), respond(500)]
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=endpoint.url("/hook"), postback_method="post"))
    deliver(committed_db, settings)
    for _ in range(2):
        with committed_db.session_scope() as s:
            (row,) = deliveries(s)
        deliver(committed_db, settings, now=due_after(row))
    assert [r.headers["webhook-id"] for r in endpoint.requests] == [row.webhook_id] * 3
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert (row.status, row.attempts) == ("delivered", 3)
        assert [a.status_code for a in attempts(s, row.id)] == [503, 500, 200]


def test_failing_endpoint_backs_off_on_schedule_then_dead_letters(committed_db, settings, endpoints):
    failing = endpoints(behaviour=respond(500, b"down"))
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=failing.url("/cb")))
    expected = [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert deliver(committed_db, settings) == 1
    for wait in expected:
        with committed_db.session_scope() as s:
            (row,) = deliveries(s)
            last = attempts(s, row.id)[-1]
        assert row.status == "pending"
        gap = (row.next_attempt_at - last.at).total_seconds()
        assert wait * 0.89 <= gap <= wait * 1.11, (wait, gap)
        # Not a moment before it is due.
        assert deliver(committed_db, settings, now=row.next_attempt_at - dt.timedelta(seconds=1)) == 0
        assert deliver(committed_db, settings, now=due_after(row)) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("dead", 10, 500, "HTTP 500")
        assert len(attempts(s, row.id)) == 10
    assert deliver(committed_db, settings, now=now_utc() + dt.timedelta(days=30)) == 0
    assert failing.connections == 10


def test_410_disables_the_url_and_stops_its_other_deliveries(committed_db, settings, endpoints):
    gone = endpoints(behaviour=respond(410))
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=gone.url("/old?c={click_id}"))
        make_conversion(s, scene)
        make_conversion(s, scene)
    assert deliver(committed_db, settings, workers=1) == 1
    assert gone.connections == 1
    with committed_db.session_scope() as s:
        first, second = deliveries(s)
        assert (first.status, first.last_status_code) == ("failed", 410)
        assert first.last_error == "410 Gone: the URL is disabled"
        assert second.status == "failed" and second.attempts == 0
        assert second.last_error.startswith("the URL is disabled: answered 410 Gone to delivery")
        (disabled,) = s.query(PostbackDisable).all()
        assert (disabled.partner_id, disabled.target, disabled.delivery_id) == (scene.partner_id, "global", first.id)
        # Nothing more is queued for it ...
        make_conversion(s, scene)
    with committed_db.session_scope() as s:
        assert len(deliveries(s)) == 2
        # ... until the partner points it elsewhere.
        s.get(Partner, scene.partner_id).postback_url = gone.url("/new?c={click_id}")
        make_conversion(s, scene)
    with committed_db.session_scope() as s:
        assert len(deliveries(s)) == 3


def test_429_retry_after_is_honoured(committed_db, settings, endpoints):
    busy = endpoints(behaviour=respond(429, headers={"Retry-After": "3600"}))
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=busy.url("/cb")))
    started = now_utc()
    assert deliver(committed_db, settings) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
    assert row.status == "pending" and row.last_status_code == 429
    assert dt.timedelta(minutes=59) < row.next_attempt_at - started < dt.timedelta(minutes=61)
    assert deliver(committed_db, settings, now=started + dt.timedelta(minutes=30)) == 0
    assert deliver(committed_db, settings, now=started + dt.timedelta(minutes=61)) == 1
    assert busy.connections == 2


def test_huge_answer_is_capped_and_counts_as_delivered(committed_db, settings, endpoints):
    big = endpoints(behaviour=huge)
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=big.url("/cb")))
    assert deliver(committed_db, settings) == 1
    big.release.set()
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        (attempt,) = attempts(s, row.id)
    assert (row.status, attempt.status_code, attempt.error) == ("delivered", 200, None)
    assert attempt.response_excerpt == "x" * 1024


def test_refused_connection_is_retried(committed_db, settings, endpoints):
    closed = endpoints()
    url = closed.url("/cb")
    closed.close()
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=url))
    assert deliver(committed_db, settings) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
    assert row.status == "pending" and row.last_error.startswith("connect failed")


def test_a_run_that_died_holding_a_row_is_replaced_after_its_lease(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=endpoint.url("/cb")))
    now = now_utc()
    with committed_db.session_scope() as s:
        # What a run killed between its lease and its send leaves behind.
        s.execute(
            update(PostbackDelivery).values(
                leased_until=now + dt.timedelta(seconds=60), lease_token="killed", attempts=1
            )
        )
    assert deliver(committed_db, settings, now=now) == 0
    assert deliver(committed_db, settings, now=now + dt.timedelta(seconds=61)) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert (row.status, row.attempts) == ("delivered", 2)
    assert endpoint.connections == 1


def test_a_removed_url_stops_its_pending_deliveries(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url("/cb"))
        make_conversion(s, scene)
        s.get(Partner, scene.partner_id).postback_url = None
    assert deliver(committed_db, settings) == 0
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
    assert (row.status, row.last_error) == ("failed", "the partner removed this postback URL")
    assert endpoint.connections == 0


def test_retries_go_to_the_url_as_the_partner_fixed_it(committed_db, settings, endpoints):
    broken, fixed = endpoints(behaviour=respond(404)), endpoints()
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=broken.url("/typo?c={click_id}"))
        make_conversion(s, scene)
    deliver(committed_db, settings)
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        s.get(Partner, scene.partner_id).postback_url = fixed.url("/cb?c={click_id}")
    deliver(committed_db, settings, now=due_after(row))
    assert (broken.connections, fixed.connections) == (1, 1)
    assert fixed.requests[0].one("c") == row.macros["click_id"]


def test_sub_ids_are_completed_from_a_click_row_written_after_the_conversion(committed_db, settings, endpoint):
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url("/cb?a={sub1}&b={sub2}"), link_subs={"sub1": "link"})
        conversion = make_conversion(s, scene, click_row=False)
        click_id, clicked_at = conversion.click_id, conversion.clicked_at
    with committed_db.session_scope() as s:
        # The click writer's batch lands after the conversion was recorded.
        s.add(
            Click(
                id=click_id,
                link_id=scene.link_id,
                offer_id=scene.offer_id,
                partner_id=scene.partner_id,
                created_at=clicked_at,
                sub1="link",
                sub2="from-click",
            )
        )
    assert deliver(committed_db, settings) == 1
    assert (endpoint.requests[0].one("a"), endpoint.requests[0].one("b")) == ("link", "from-click")
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert row.subs_from_click and row.macros["sub2"] == "from-click"
