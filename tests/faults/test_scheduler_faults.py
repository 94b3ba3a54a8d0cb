"""The scheduler under faults: a try that cannot claim its period or fails is retried and logged at
ERROR; a missed long period is caught up at the next start; each job's last success and failure
are shown (GET /api/v1/jobs, `flask scheduler status`)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from network import jobruns, scheduler
from network.clock import now_utc
from network.config import Settings
from network.db import Database
from network.payouts import jobstatus
from network.payouts.models import JobClaim, JobStatus
from tests.conftest import make_settings
from tests.factories import Api, make_brand, make_key
from tests.faults.proxy import Outage


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobruns, "RETRY_FIRST", 0.2)
    monkeypatch.setattr(jobruns, "RETRY_MAX", 0.5)


def _claims(database: Database, job_id: str) -> list[tuple[str, str | None]]:
    with database.session_scope() as session:
        rows = session.execute(
            select(JobClaim.period_key, JobClaim.outcome).where(JobClaim.job_id == job_id).order_by(JobClaim.id)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _status(database: Database, job_id: str) -> JobStatus:
    with database.session_scope() as session:
        row = session.scalars(select(JobStatus).where(JobStatus.job_id == job_id)).one()
        session.expunge(row)
        return row


def test_a_period_that_cannot_be_claimed_is_retried_until_the_database_is_back(
    committed_db: Database, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    away = Outage(database_url, tmp_path)
    through = away.watch(Database(away.url))
    settings = make_settings(away.url)
    period = scheduler.period_of(scheduler.get_job("build_payouts"), settings, now_utc())
    caplog.set_level(logging.INFO, logger="network.jobruns")
    results: list[Any] = []
    try:
        away.down()
        run = threading.Thread(
            target=lambda: results.append(scheduler.run_scheduled(through, settings, "build_payouts", period=period))
        )
        run.start()
        time.sleep(1.5)
        assert run.is_alive() and _claims(committed_db, "build_payouts") == []
        away.up()
        run.join(20)
        assert not run.is_alive()
    finally:
        away.close()
        through.dispose()
    assert results and results[0]["ran"] is True and results[0]["period"] == period.isoformat()
    assert _claims(committed_db, "build_payouts") == [(period.isoformat(), "ok")]
    failures = [r for r in caplog.records if "failed, retrying" in r.getMessage()]
    assert failures and all(r.levelno == logging.ERROR for r in failures)
    assert "could not claim the period" in failures[0].getMessage()
    status = _status(committed_db, "build_payouts")
    assert status.last_success_period == period.isoformat() and status.failures == 0
    assert status.last_success_ms is not None and status.last_success_outcome
    assert "could not claim the period" in (status.last_failure_reason or "")
    assert status.last_failure_at is not None and status.last_success_at is not None
    assert status.last_failure_at <= status.last_success_at


def test_a_failed_run_is_retried_for_its_period_and_its_failure_is_shown(
    committed_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[dt.datetime] = []

    def flaky(ctx: scheduler.JobContext) -> Any:
        calls.append(ctx.now)
        if len(calls) < 3:
            raise RuntimeError(f"the partner API timed out (call {len(calls)})")
        return {"done": len(calls)}

    job = scheduler.Job("flaky", "Fails twice, then works", {"hour": "4"}, flaky)
    monkeypatch.setattr(scheduler, "JOBS", (*scheduler.JOBS, job))
    period = scheduler.period_of(job, settings, now_utc())
    caplog.set_level(logging.INFO, logger="network.jobruns")
    result = scheduler.run_scheduled(committed_db, settings, "flaky", period=period)
    assert result is not None and result["result"] == {"done": 3} and len(calls) == 3
    # One claim for the period, taken over by each retry, ending ok.
    assert _claims(committed_db, "flaky") == [(period.isoformat(), "ok")]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and r.name == "network.jobruns"]
    assert sum("failed, retrying" in r.getMessage() for r in errors) == 2
    status = _status(committed_db, "flaky")
    assert status.last_failure_reason == "RuntimeError: the partner API timed out (call 2)"
    assert status.last_success_period == period.isoformat() and status.failures == 0


def test_a_run_that_keeps_failing_gives_up_at_its_next_fire_time(
    committed_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_ctx: scheduler.JobContext) -> Any:
        raise RuntimeError("always")

    job = scheduler.Job("broken", "Always fails", {"second": "*/2"}, broken)
    monkeypatch.setattr(scheduler, "JOBS", (*scheduler.JOBS, job))
    monkeypatch.setattr(jobruns, "RETRY_MARGIN", dt.timedelta(0))
    # The coming period, so that its retries have between 2 and 4 s before the next one's run.
    period = job.trigger(settings).get_next_fire_time(None, now_utc())
    following = period + dt.timedelta(seconds=2)
    assert scheduler.run_scheduled(committed_db, settings, "broken", period=period) is None
    assert now_utc() <= following + dt.timedelta(seconds=1)  # it stopped at the next period's run
    assert "giving up: RuntimeError: always" in caplog.text
    status = _status(committed_db, "broken")
    assert status.failures >= 2 and status.last_success_at is None


def test_a_missed_weekly_payout_run_is_caught_up_at_the_next_start(committed_db: Database, settings: Settings) -> None:
    now = now_utc()
    assert scheduler.catch_up(committed_db, settings, now=now) == []  # a new network missed nothing
    later = now + dt.timedelta(days=8)
    missed = scheduler.catch_up(committed_db, settings, now=later)
    # The monthly invoice build is missed too when the 8 days cross the 1st.
    assert set(missed) - {"build_invoices"} == {"build_payouts", "accrue_traffic", "purge_click_ips"}
    week = scheduler.period_of(scheduler.get_job("build_payouts"), settings, later)
    assert _claims(committed_db, "build_payouts") == [(week.isoformat(), "ok")]
    assert scheduler.catch_up(committed_db, settings, now=later) == []  # run once only
    # A period a scheduler ran is not run again.
    fortnight = now + dt.timedelta(days=15)
    week = scheduler.period_of(scheduler.get_job("build_payouts"), settings, fortnight)
    scheduler.run_job(committed_db, settings, "build_payouts", period_key=week.isoformat())
    assert "build_payouts" not in scheduler.catch_up(committed_db, settings, now=fortnight)


def test_a_started_scheduler_catches_up_a_missed_period_by_itself(committed_db: Database, settings: Settings) -> None:
    long_ago = now_utc() - dt.timedelta(days=30)
    with committed_db.session_scope() as session:
        jobstatus.declare(session, [jobstatus.JobInfo("build_payouts", "", "", None)], now=long_ago)
    week = scheduler.period_of(scheduler.get_job("build_payouts"), settings, now_utc())
    running = scheduler.start_in_process(committed_db, settings)
    try:
        deadline = time.monotonic() + 20
        while (week.isoformat(), "ok") not in _claims(committed_db, "build_payouts") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        running.shutdown(wait=True)
    assert _claims(committed_db, "build_payouts")[:1] == [(week.isoformat(), "ok")]


@pytest.fixture
def ran(db: Any, settings: Settings) -> Iterator[None]:
    scheduler.run_job(db, settings, "accrue_traffic")
    yield


def test_jobs_are_listed_with_their_last_success_for_admin_and_finance_only(
    client: Any, session: Any, ran: None
) -> None:
    admin = Api(client, make_key(session, role="admin"))
    r = admin.get("/api/v1/jobs")
    assert r.status_code == 200, r.json
    assert set(r.json) == {"items", "limit", "next_after"}
    (accrue,) = [item for item in r.json["items"] if item["job_id"] == "accrue_traffic"]
    assert accrue["schedule"].startswith("cron[") and accrue["next_run_at"]
    assert accrue["last_success_at"] and accrue["last_success_ms"] >= 0 and accrue["last_success_outcome"]
    assert accrue["last_failure_at"] is None and accrue["failures"] == 0
    assert Api(client, make_key(session, role="finance")).get("/api/v1/jobs").status_code == 200
    brand_key = make_key(session, role="brand", brand=make_brand(session))
    assert Api(client, brand_key).get("/api/v1/jobs").status_code == 403
    assert admin.get("/api/v1/jobs?limit=1").json["limit"] == 1


def test_cli_status_shows_each_jobs_last_success(app: Any, ran: None) -> None:
    result = app.test_cli_runner().invoke(args=["scheduler", "status"])
    assert result.exit_code == 0, result.output
    rows = {row["job_id"]: row for row in json.loads(result.output.strip().splitlines()[-1])}
    assert rows["accrue_traffic"]["last_success_at"] and rows["accrue_traffic"]["failures"] == 0
