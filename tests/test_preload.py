"""gunicorn --preload with the README's gevent workers: the app is made in the master, then forked.

The workers' waits for the database are chosen when gevent patches each worker (network/serving.py),
not when the app is made, so a preloaded app serves as one made in the worker does.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import signal
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode, urlsplit

import pytest

from bench.harness import Server
from network.clock import UTC
from tests.conversions.conftest import SECRET, make_click, make_link
from tests.factories import make_brand, make_key, make_offer, make_partner

pytestmark = [pytest.mark.slow]

#: The README's server options, and --preload.
OPTIONS = ["--config", "python:network.serving", "--preload"]


def _get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_a_preloaded_app_on_gevent_workers_redirects_clicks_and_answers_the_api(committed_db, database_url):
    now = dt.datetime.now(UTC)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand)
        link = make_link(session, offer=offer, partner=partner)
        code, offer_id, token = link.code, offer.id, brand.postback_token
        click = make_click(session, link, at=now - dt.timedelta(minutes=5), country="US")
        key = make_key(session, role="brand", brand=brand)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TESTING": "0"}
    server = Server(
        "tests.serving_probe:app",
        env=env,
        workers=2,
        worker_class="gevent",
        ready_path="/healthz",
        timeout=60,
        extra_args=OPTIONS,
    )
    with server:
        status, _, body = _get(server.url, "/_probe")
        # Waits chosen after the fork, when gevent patched the worker.
        assert json.loads(body) == {"enabled": True, "psycopg": True, "write lock": True, "line": True}
        status, headers, _ = _get(server.url, f"/c/{code}")
        assert status == 302, server.output()
        assert "cid=" in headers["Location"]
        status, _, body = _get(server.url, "/api/v1/offers", {"Authorization": f"Bearer {key}"})
        assert status == 200, server.output()
        assert offer_id in [item["id"] for item in json.loads(body)["items"]]
        query = urlencode({"click_id": click, "event": "sale", "txn_id": "P-1", "token": token})
        status, _, body = _get(server.url, f"/postback?{query}")
        assert status == 200, server.output()
        assert json.loads(body)["status"] == "approved"
        assert server.stop(signal.SIGTERM) == 0, server.output()


def _clicks(base: str, codes: list[str], client: int) -> list[int]:
    """Click 40 times on one connection each time: known links and, every third, an unknown code."""
    return [_get(base, f"/c/{codes[n % len(codes)] if n % 3 else f'unknown{client}x{n}'}")[0] for n in range(40)]


def test_a_preloaded_app_serves_concurrent_first_clicks_without_a_worker_stopping(committed_db, database_url):
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand)
        codes = [make_link(session, offer=offer, partner=partner).code for _ in range(5)]
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TESTING": "0"}
    server = Server(
        "wsgi:app", env=env, workers=2, worker_class="gevent", ready_path="/healthz", timeout=60, extra_args=OPTIONS
    )
    with server:
        # The first requests of each worker arrive together, before it has loaded its link snapshot.
        with ThreadPoolExecutor(24) as pool:
            statuses = [
                status for f in [pool.submit(_clicks, server.url, codes, c) for c in range(24)] for status in f.result()
            ]
        assert server.stop(signal.SIGTERM) == 0, server.output()
    assert sorted(set(statuses)) == [302, 404]
    assert "WORKER TIMEOUT" not in server.output()
