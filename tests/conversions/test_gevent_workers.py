"""Postbacks on gunicorn's gevent workers (the README's setup), on SQLite and PostgreSQL.

Under gevent every lock, wait and socket of the app is a greenlet's: the group commit's handed-over
locks, psycopg's waits for the server, SQLite's wait for its write lock and the writers' line, the
click writer's thread. This runs the real server with them and checks what a brand relies on: every
answered postback is committed, exactly once.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from bench.harness import Server
from network.clock import UTC
from network.conversions.models import Conversion
from network.payouts.models import LedgerEntry
from tests.conversions.conftest import SECRET, make_click, make_link
from tests.factories import make_brand, make_offer, make_partner

pytestmark = [pytest.mark.slow]

CLIENTS = 12
PER_CLIENT = 25
REPLAYS = 40


def _client(base: str, paths: list[str]) -> list[tuple[int, Any]]:
    """Send GET `paths` one after another on one keep-alive connection; return (status, JSON body) of each."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    answers = []
    try:
        for path in paths:
            conn.request("GET", path)
            response = conn.getresponse()
            answers.append((response.status, json.loads(response.read())))
    finally:
        conn.close()
    return answers


def test_concurrent_postbacks_on_gevent_workers_are_each_committed_once(committed_db, database_url):
    now = dt.datetime.now(UTC)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(
            session,
            brand=brand,
            events=[{"key": "sale", "model": "revshare", "payout_percent": "10", "revenue_percent": "15"}],
        )
        link = make_link(session, offer=offer, partner=partner)
        click = make_click(session, link, at=now - dt.timedelta(minutes=5), country="US")
        token = brand.postback_token

    def path(txn_id: str) -> str:
        return "/postback?" + urlencode(
            {"click_id": click, "event": "sale", "amount": "80.00", "txn_id": txn_id, "token": token}
        )

    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET, "TESTING": "0"}
    server = Server("wsgi:app", env=env, workers=2, worker_class="gevent", ready_path="/healthz", timeout=60)
    with server:
        with ThreadPoolExecutor(CLIENTS + 4) as pool:
            new = [
                pool.submit(_client, server.url, [path(f"G-{c}-{i}") for i in range(PER_CLIENT)])
                for c in range(CLIENTS)
            ]
            replays = [pool.submit(_client, server.url, [path("G-same")] * (REPLAYS // 4)) for _ in range(4)]
            new_answers = [answer for future in new for answer in future.result()]
            replay_answers = [answer for future in replays for answer in future.result()]
        assert server.stop(signal.SIGTERM) == 0, server.output()

    assert {status for status, _ in new_answers + replay_answers} == {200}
    assert {body["status"] for _, body in new_answers} == {"approved"}
    assert not any(body["duplicate"] for _, body in new_answers)
    new_ids = {body["conversion_id"] for _, body in new_answers}
    assert len(new_ids) == CLIENTS * PER_CLIENT  # each its own conversion
    # The same txn_id from four connections at once: one conversion, every other answer points at it.
    assert len({body["conversion_id"] for _, body in replay_answers}) == 1
    assert sum(not body["duplicate"] for _, body in replay_answers) == 1

    with committed_db.session_scope() as session:
        rows = session.execute(
            select(Conversion.id, Conversion.status, Conversion.payout_minor).where(Conversion.offer_id == offer.id)
        ).all()
        assert {r.id for r in rows} == new_ids | {replay_answers[0][1]["conversion_id"]}
        assert {(r.status, r.payout_minor) for r in rows} == {("approved", 800)}
        # One commission entry per conversion, none twice.
        entries = session.execute(
            select(LedgerEntry.conversion_id, func.count()).where(LedgerEntry.partner_id == partner.id)
            .group_by(LedgerEntry.conversion_id)
        ).all()  # fmt: skip
        assert dict(entries) == dict.fromkeys((r.id for r in rows), 1)
