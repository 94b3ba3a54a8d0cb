"""/metrics: served only with its token, Prometheus's text format, counters that move with the traffic."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from network.app import create_app
from network.clock import UTC
from network.deadletters.models import DeadLetter
from network.payouts.models import JobStatus
from network.tracking import service as tracking
from tests.conversions.conftest import REVSHARE, make_click, make_shop, postback

TOKEN = "metrics-token-for-tests"
NOW = dt.datetime.now(UTC)


@pytest.fixture
def app(settings, db, request):  # type: ignore[no-untyped-def]
    """The app with METRICS_TOKEN set."""
    yield create_app(dataclasses.replace(settings, metrics_token=TOKEN), database=db)


def _scrape(client: Any) -> dict[str, Any]:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.mimetype == "text/plain"
    return {family.name: family for family in text_string_to_metric_families(r.get_data(as_text=True))}


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(family: Any) -> dict[tuple[str, ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_metrics_are_not_served_without_a_token_setting(settings, db):
    client = create_app(settings, database=db).test_client()
    r = client.get("/metrics", headers={"Authorization": "Bearer anything"})
    assert r.status_code == 404 and r.json["code"] == "not_found"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_need_the_token(client, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 401 and r.json["code"] == "unauthorized" and TOKEN not in r.get_data(as_text=True)


def test_the_answer_is_prometheus_text_with_the_database_gauges(client, session):
    session.add(DeadLetter(created_at=NOW, source="clicks", reason="DataError: refused", payload="{}"))
    session.add(
        JobStatus(
            job_id="deliveries",
            description="send",
            schedule="every 5 s",
            declared_at=NOW,
            last_success_at=NOW,
            last_success_ms=1500,
            failures=0,
        )
    )
    session.flush()
    families = _scrape(client)
    assert _samples(families["network_database_up"]) == {(): 1.0}
    assert _samples(families["network_dead_letters"])[(("source", "clicks"),)] == 1.0
    assert _samples(families["network_job_last_success_timestamp_seconds"]) == {
        (("job", "deliveries"),): pytest.approx(NOW.timestamp())
    }
    assert _samples(families["network_job_last_success_duration_seconds"]) == {(("job", "deliveries"),): 1.5}
    deliveries = _samples(families["network_deliveries"])
    assert {dict(k)["state"] for k in deliveries} == {"pending", "failing", "failed", "dead"}
    assert "network_payouts" in families and "network_db_pool_checked_out" in families
    # The counters of network/metrics.py, and the process's own (the plain registry's).
    assert {"network_clicks", "network_postbacks", "network_click_flush_seconds", "process_cpu_seconds"} <= set(
        families
    )


def test_clicks_are_counted_by_outcome_and_flushes_by_size(client, session):
    shop = make_shop(session, client, events=[REVSHARE])
    before = {o: _value("network_clicks_total", outcome=o) for o in ("redirected", "not_found")}
    flushes = _value("network_click_flush_rows_count")
    rows = _value("network_click_flush_rows_sum")
    assert client.get(f"/c/{shop.link.code}").status_code == 302
    assert client.get(f"/c/{shop.link.code}").status_code == 302
    assert client.get("/c/nosuchcode").status_code == 404
    assert _value("network_clicks_total", outcome="redirected") == before["redirected"] + 2
    assert _value("network_clicks_total", outcome="not_found") == before["not_found"] + 1
    # Clicks are counted by outcome, not timed per request (network/ops/logs.py: recorded routes).
    assert _value("network_request_duration_seconds_count", route="/c/<code>") == 0
    tracking.flush_clicks()
    assert _value("network_click_flush_rows_count") == flushes + 1
    assert _value("network_click_flush_rows_sum") == rows + 2
    assert _value("network_click_queue_depth") == 0


def test_postbacks_are_counted_by_outcome_and_batches_by_size(client, session):
    shop = make_shop(session, client, events=[REVSHARE])
    click = make_click(session, shop.link, at=NOW - dt.timedelta(hours=1))

    def count(outcome: str) -> float:
        return _value("network_postbacks_total", source="postback", outcome=outcome)

    before = {o: count(o) for o in ("approved", "duplicate", "forbidden", "validation_error")}
    batches = _value("network_postback_batch_size_count")
    query = {"click_id": click, "event": "sale", "amount": "10.00", "txn_id": "M-1"}
    assert postback(client, **query, token=shop.token).json["status"] == "approved"
    assert postback(client, **query, token=shop.token).json["duplicate"] is True
    assert postback(client, **query, token="wrong").status_code == 403
    assert postback(client, **{**query, "amount": "ten"}, token=shop.token).status_code == 400
    assert {o: count(o) - before[o] for o in before} == {
        "approved": 1,
        "duplicate": 1,
        "forbidden": 1,
        "validation_error": 1,
    }
    assert _value("network_postback_batch_size_count") >= batches + 1


def test_counting_a_click_asks_the_database_nothing(client, session, app):
    """The hot path pays a counter's inc: the tables /metrics reads are read at scrape time only."""
    shop = make_shop(session, client, events=[REVSHARE])
    assert client.get(f"/c/{shop.link.code}").status_code == 302  # the snapshot is loaded
    statements: list[str] = []
    engine = app.extensions["network.db"].engine

    def seen(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert client.get(f"/c/{shop.link.code}").status_code == 302
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    read_at_scrape = ("dead_letters", "postback_deliveries", "job_status", "payouts", "alembic_version")
    assert statements and not [s for s in statements if any(table in s for table in read_at_scrape)]


def test_payout_outcomes_are_counted_and_the_invoice_counter_exists(client):
    from network import metrics

    before = _value("network_payout_outcomes_total", outcome="paid")
    metrics.payout_outcomes({"paid": [1, 2], "failed": [], "unknown": []})
    assert _value("network_payout_outcomes_total", outcome="paid") == before + 2
    assert "network_invoice_outcomes" in _scrape(client)
