"""Under gunicorn with two workers and PROMETHEUS_MULTIPROC_DIR, any worker's /metrics counts every worker's clicks."""

from __future__ import annotations

import http.client
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client import multiprocess
from prometheus_client.parser import text_string_to_metric_families

from bench.harness import Server
from tests.conversions.conftest import SECRET, make_link
from tests.factories import make_brand, make_offer, make_partner

pytestmark = [pytest.mark.slow]

TOKEN = "gunicorn-metrics-token"
CLICKS = 60


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _redirected(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "network_clicks_total" and sample.labels == {"outcome": "redirected"}:
                return sample.value
    return 0.0


def _clicks_of(path: Path) -> float:
    """Return the redirected clicks one process's file holds."""
    for family in multiprocess.MultiProcessCollector.merge([str(path)]):
        for sample in family.samples:
            if sample.name == "network_clicks_total" and sample.labels == {"outcome": "redirected"}:
                return sample.value
    return 0.0


def _pids(folder: Path, prefix: str) -> set[str]:
    return {m.group(1) for p in folder.iterdir() if (m := re.fullmatch(rf"{prefix}_(\d+)\.db", p.name))}


def test_two_workers_metrics_add_up_in_every_scrape(committed_db, database_url, tmp_path):
    with committed_db.session_scope() as session:
        offer = make_offer(session, brand=make_brand(session))
        code = make_link(session, offer=offer, partner=make_partner(session)).code
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "TESTING": "0",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(folder),
    }
    server = Server("wsgi:app", env=env, workers=2, worker_class="gevent", ready_path="/healthz", timeout=60)
    with server:
        assert not (folder / "counter_1.db").exists()  # emptied as the server started
        # Rounds of concurrent clicks until both workers served some (the second may still be booting).
        sent, served = 0, {}
        with ThreadPoolExecutor(12) as pool:
            for _ in range(40):
                statuses = list(pool.map(lambda _: _get(server.port, f"/c/{code}")[0], range(CLICKS)))
                assert statuses == [302] * CLICKS, server.output()
                sent += CLICKS
                served = {pid: _clicks_of(folder / f"counter_{pid}.db") for pid in _pids(folder, "counter")}
                if sum(1 for n in served.values() if n) == 2:
                    break
        assert sum(1 for n in served.values() if n) == 2, f"one worker served every click: {served}"
        # Each scrape is answered by either worker, and counts both.
        for _ in range(6):
            status, text = _get(server.port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
            assert status == 200, server.output()
            assert _redirected(text) == sent
        assert _get(server.port, "/metrics")[0] == 401
        live = _pids(folder, "gauge_livesum")
        assert live
        # Two workers exit at once: the hook runs in the master's SIGCHLD handler, twice.
        assert server.stop(signal.SIGTERM) == 0, server.output()
        assert "Traceback" not in server.output(), server.output()
    # A worker that exited no longer counts in the live gauges (gunicorn's child_exit hook).
    assert not _pids(folder, "gauge_livesum") & live
