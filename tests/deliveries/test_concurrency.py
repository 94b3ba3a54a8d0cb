"""RELIABILITY.md 15 and the outbox under concurrency: slow partners hold nobody up; each row sent once."""

from __future__ import annotations

import json
import multiprocessing
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from werkzeug.serving import make_server

from network.partners.models import Partner
from tests.deliveries.conftest import attempts, deliver, deliveries, fast, make_conversion, make_scene
from tests.deliveries.endpoints import Endpoint, Received, respond, stall
from tests.deliveries.workers import delivery_scheduler
from tests.factories import make_key


@pytest.fixture
def web(committed_app: Any) -> Iterator[str]:
    """Serve the app from a real threaded WSGI server; yield its base URL."""
    server = make_server("127.0.0.1", 0, committed_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def call(base: str, method: str, path: str, key: str | None = None, body: Any = None) -> tuple[int, Any]:
    """Make one HTTP request to the served app; return (status, JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read())


def test_web_requests_are_served_while_a_delivery_is_stuck(committed_db, settings, web, endpoints):
    slow = endpoints(behaviour=stall)
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=slow.url("/cb"))
        make_conversion(s, scene)
        key = make_key(s, role="partner", partner=s.get(Partner, scene.partner_id))
    # The production read timeout: the delivery stays stuck until the endpoint is released.
    job = threading.Thread(target=deliver, args=(committed_db, settings), kwargs={"transport": fast(read_timeout=10)})
    job.start()
    try:
        assert slow.stalled.wait(10)
        assert call(web, "GET", "/healthz") == (200, {"status": "ok"})
        # A write: on SQLite it needs the write lock, so the job must hold no transaction while it waits.
        status, body = call(web, "PATCH", f"/api/v1/partners/{scene.partner_id}", key, {"name": "Renamed"})
        assert (status, body["name"]) == (200, "Renamed")
        status, body = call(web, "GET", "/api/v1/postback-deliveries", key)
        (item,) = body["items"]
        assert (item["status"], item["attempts"], item["last_status_code"]) == ("pending", 1, None)
        assert job.is_alive()  # all of that happened while the delivery was still waiting
    finally:
        slow.release.set()
        job.join(20)
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        assert (row.status, row.last_status_code) == ("delivered", 200)


def test_slow_endpoint_times_out_and_is_retried_later(committed_db, settings, endpoints):
    slow = endpoints(behaviour=stall)
    with committed_db.session_scope() as s:
        make_conversion(s, make_scene(s, postback_url=slow.url("/cb")))
    assert deliver(committed_db, settings, transport=fast(read_timeout=0.5)) == 1
    with committed_db.session_scope() as s:
        (row,) = deliveries(s)
        (attempt,) = attempts(s, row.id)
        assert (row.status, attempt.status_code, attempt.error) == ("pending", None, "timeout: read")
        assert row.next_attempt_at > attempt.at


def test_one_dead_endpoint_costs_one_timeout_per_run(committed_db, settings, endpoints):
    slow, fine = endpoints(behaviour=stall), endpoints()
    with committed_db.session_scope() as s:
        stuck = make_scene(s, postback_url=slow.url("/cb"))
        for _ in range(3):
            make_conversion(s, stuck)
        make_conversion(s, make_scene(s, postback_url=fine.url("/cb")))
    assert deliver(committed_db, settings, workers=1, transport=fast(read_timeout=0.3)) == 2
    assert (slow.connections, fine.connections) == (1, 1)
    with committed_db.session_scope() as s:
        assert sorted(r.attempts for r in deliveries(s, partner_id=stuck.partner_id)) == [0, 0, 1]


def pause(seconds: float) -> Any:
    """Return a behaviour answering 200 after a short pause, so concurrent runs overlap."""

    def behave(handler: BaseHTTPRequestHandler, request: Received, endpoint: Endpoint) -> None:
        time.sleep(seconds)
        respond(200)(handler, request, endpoint)

    return behave


def make_many(committed_db: Any, endpoint: Endpoint, count: int) -> set[str]:
    """Queue `count` deliveries to one endpoint; return their webhook ids."""
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url("/cb?c={click_id}"))
        for _ in range(count):
            make_conversion(s, scene)
    with committed_db.session_scope() as s:
        return {r.webhook_id for r in deliveries(s)}


def assert_each_sent_once(committed_db: Any, endpoint: Endpoint, ids: set[str]) -> None:
    sent = [r.headers["webhook-id"] for r in endpoint.requests]
    assert sorted(sent) == sorted(ids)  # every row, none twice
    with committed_db.session_scope() as s:
        rows = deliveries(s)
        assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
        assert all(len(attempts(s, r.id)) == 1 for r in rows)


def test_two_runs_at_once_send_each_row_once(committed_db, settings, endpoints):
    endpoint = endpoints(behaviour=pause(0.01))
    ids = make_many(committed_db, endpoint, 40)
    sent: list[int] = []
    runs = [threading.Thread(target=lambda: sent.append(deliver(committed_db, settings, workers=3))) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert sum(sent) == 40
    assert_each_sent_once(committed_db, endpoint, ids)
    # Replays of the job find nothing left to send.
    assert deliver(committed_db, settings) == 0
    assert endpoint.connections == 40


@pytest.mark.postgres_only
def test_two_scheduler_processes_send_each_row_once(committed_db, settings, endpoints, dialect, database_url):
    if dialect != "postgresql":
        pytest.skip("several processes against one database: PostgreSQL")
    endpoint = endpoints(behaviour=pause(0.02))
    ids = make_many(committed_db, endpoint, 60)
    context = multiprocessing.get_context("spawn")
    # Both start sending only when both are ready, so their runs really overlap.
    start, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=delivery_scheduler, args=(database_url, start, results)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    counts = [results.get(timeout=5) for _ in processes]
    assert sum(counts) == 60
    assert_each_sent_once(committed_db, endpoint, ids)
