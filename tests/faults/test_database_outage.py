"""RELIABILITY.md case 28: the database goes away under click and postback load and comes back.

A real PostgreSQL cluster of the test's own is stopped (pg_ctl stop -m fast, as an operator would)
under the README's server (gunicorn, gevent workers, network.serving's hooks) and started again.
It stays away for OUTAGE = 30 s, as RELIABILITY says: many flushes of the click writer, postback
batches and the scheduler's retries fall in it. Asserted: every click answered 302 is written; every postback answered 200 is stored; the
others were answered 503 with Retry-After and are in the brand's postback log afterwards; the app
recovers by itself; a scheduled run fired during the outage runs once the database is back.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from sqlalchemy import select

from bench.harness import Server
from network import jobruns, migrate, scheduler
from network.clock import now_utc
from network.conversions.models import Conversion, PostbackLog
from network.db import Database
from network.payouts.models import JobClaim
from network.tracking.models import Click, Link
from tests.conftest import PG_ADMIN_URL, make_settings
from tests.factories import make_brand, make_key, make_offer, make_partner
from tests.faults.cluster import Cluster

#: Seconds the database is away (RELIABILITY says 30; see the module's docstring).
OUTAGE = 30.0

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if not PG_ADMIN_URL:
        pytest.skip("the PostgreSQL pass runs it (TEST_POSTGRES_URL): it needs PostgreSQL's server binaries")
    own = Cluster()
    try:
        own.start()
        yield own
    finally:
        own.destroy()


class Load:
    """Clients sending clicks and postbacks until stopped, keeping every answer."""

    def __init__(self, base: str, code: str, click_ids: list[str], token: str) -> None:
        parts = urlsplit(base)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._code, self._click_ids, self._token = code, click_ids, token
        self.stop = threading.Event()
        self.clicks: list[tuple[float, int, str | None]] = []
        self.postbacks: list[tuple[float, str, int, dict[str, Any] | None, str | None]] = []
        self._lock = threading.Lock()
        self._next = 0

    def _get(self, path: str) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            conn.request("GET", path, headers={"Connection": "close", "User-Agent": "Mozilla/5.0 Firefox/120.0"})
            response = conn.getresponse()
            return response.status, response, response.read()
        except (OSError, http.client.HTTPException):
            return -1, None, b""  # no answer at all: counted, and fails the test's status checks
        finally:
            conn.close()

    def click(self) -> None:
        while not self.stop.is_set():
            status, response, _ = self._get(f"/c/{self._code}?sub1=outage")
            location = response.getheader("Location") if response is not None else None
            cid = parse_qs(urlsplit(location).query)["cid"][0] if status == 302 and location else None
            self.clicks.append((time.monotonic(), status, cid))
            time.sleep(0.01)

    def postback(self) -> None:
        import json

        while not self.stop.is_set():
            with self._lock:
                n, self._next = self._next, self._next + 1
            txn = f"T-{n}"
            query = urlencode(
                {"click_id": self._click_ids[n % len(self._click_ids)], "event": "lead", "txn_id": txn,
                 "token": self._token}
            )  # fmt: skip
            status, response, body = self._get(f"/postback?{query}")
            answer = json.loads(body) if body.startswith(b"{") else None
            retry_after = response.getheader("Retry-After") if response is not None else None
            self.postbacks.append((time.monotonic(), txn, status, answer, retry_after))
            time.sleep(0.02)


def _wait(check: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def test_the_database_goes_away_under_load_and_comes_back(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobruns, "RETRY_FIRST", 0.5)
    monkeypatch.setattr(jobruns, "RETRY_MAX", 1.0)
    migrate.upgrade(cluster.url)
    database = Database(cluster.url)
    with database.session_scope() as session:
        brand = make_brand(session)
        offer = make_offer(
            session, brand=brand, events=[{"key": "lead", "model": "cpl", "payout": "2.00", "revenue": "3.00"}]
        )
        session.add(Link(code="outage", offer_id=offer.id, partner_id=make_partner(session).id))
        admin_key = make_key(session, role="admin")
        token = brand.postback_token
    env = {"DATABASE_URL": cluster.url, "SECRET_KEY": "test-secret-key", "TESTING": "0"}
    server = Server(
        "wsgi:app", env=env, workers=2, worker_class="gevent", ready_path="/healthz", timeout=60,
        extra_args=["--limit-request-line", "16384"],
    )  # fmt: skip
    with server:
        base = server.url
        # Clicks to convert, written before the outage.
        warm = Load(base, "outage", [], token)
        first = [warm._get("/c/outage")[1].getheader("Location") for _ in range(20)]
        click_ids = [parse_qs(urlsplit(location).query)["cid"][0] for location in first]

        def written() -> bool:
            with database.session_scope() as session:
                return len(session.scalars(select(Click.id).where(Click.id.in_(click_ids))).all()) == 20

        _wait(written, 10, "the warm-up clicks were not written")
        load = Load(base, "outage", click_ids, token)
        clients = [threading.Thread(target=load.click) for _ in range(3)]
        clients += [threading.Thread(target=load.postback) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            time.sleep(2)
            cluster.stop()
            stopped = time.monotonic()
            # The scheduler fires a run during the outage (APScheduler calls run_scheduled).
            settings = make_settings(cluster.url)
            period = scheduler.period_of(scheduler.get_job("build_payouts"), settings, now_utc())
            runs: list[Any] = []
            fired = threading.Thread(
                target=lambda: runs.append(scheduler.run_scheduled(database, settings, "build_payouts", period=period))
            )
            fired.start()
            time.sleep(OUTAGE)
            cluster.start()
            restarted = time.monotonic()

            def answers() -> bool:
                return _api(base, admin_key)[0] == 200

            recovery = _wait(answers, 10, "the app did not answer again by itself")
            time.sleep(3)
        finally:
            load.stop.set()
            for client in clients:
                client.join(30)
        fired.join(20)
        assert server.stop() == 0, server.output()  # a clean shutdown flushes what is buffered

    during = [p for p in load.postbacks if stopped + 0.5 < p[0] < restarted]
    after = [p for p in load.postbacks if p[0] > restarted + recovery + 1]
    assert during and after, "load did not run through the outage"
    # Every postback answered 200 (a conversion) or 503 with Retry-After: never a 500.
    assert {p[2] for p in load.postbacks} <= {200, 503}, [p for p in load.postbacks if p[2] not in (200, 503)][:3]
    assert all(p[4] == "5" for p in load.postbacks if p[2] == 503)
    assert {p[2] for p in during} == {503} and {p[2] for p in after} == {200}
    accepted = {p[1]: p[3]["conversion_id"] for p in load.postbacks if p[2] == 200}
    refused = {p[1] for p in load.postbacks if p[2] == 503}
    assert all(accepted.values())
    with database.session_scope() as session:
        stored = {row.txn_id: row.id for row in session.execute(select(Conversion.txn_id, Conversion.id))}
        assert {txn: stored.get(txn) for txn in accepted} == accepted  # none answered 200 and lost
        logged = session.execute(
            select(PostbackLog.txn_id, PostbackLog.brand_id).where(
                PostbackLog.http_status == 503, PostbackLog.reason == "database_unavailable"
            )
        ).all()
        assert {txn for txn, _ in logged} == refused  # each refused postback is in the log
        assert {brand_id for _, brand_id in logged} == {brand.id}  # the brand's own log
        # Every click answered 302, the outage's too, is written (once).
        assert {c[1] for c in load.clicks} == {302}
        answered = {c[2] for c in load.clicks}
        rows = set(session.scalars(select(Click.id).where(Click.id.in_(answered))).all())
        assert answered - rows == set()
        # The run fired during the outage ran once the database was back.
        claims = session.execute(select(JobClaim.period_key, JobClaim.outcome, JobClaim.claimed_at)).all()
    print(
        f"outage {OUTAGE:.0f} s: {len(load.clicks)} clicks, {len(accepted)} postbacks stored, {len(refused)} refused"
        f" (503) and logged; the app answered again {recovery:.2f} s after the server accepted connections"
    )
    assert runs and runs[0] is not None and runs[0]["ran"] is True
    assert [(key, outcome) for key, outcome, _ in claims] == [(period.isoformat(), "ok")]
    database.dispose()


def _api(base: str, key: str) -> tuple[int, Any, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", "/api/v1/offers?limit=1", headers={"Authorization": f"Bearer {key}"})
        response = conn.getresponse()
        return response.status, response, response.read()
    finally:
        conn.close()
