"""The scheduler: one declarative job list, periods claimed in the database, the CLI commands."""

from __future__ import annotations

import datetime as dt
import json
import os
import queue
import signal
import subprocess
import sys
import threading

from sqlalchemy import select

from network import scheduler
from network.clock import UTC
from network.config import ROOT
from network.payouts.models import JobClaim, Payout
from tests.conftest import make_settings
from tests.factories import make_partner
from tests.payouts.support import NOW, exports_fixture, make_commission, make_shop  # noqa: F401

JOB_IDS = {
    "mature_holds",
    "build_payouts",
    "settle_payouts",
    "recover_payouts",
    "accrue_traffic",
    "purge_click_ips",
    "keep_click_partitions",
    "deliver_postbacks",
    "roll_up",
    "flag_anomalies",
    "build_invoices",
    "send_invoices",
    "check_credit",
}


def test_every_job_is_declared_once_with_a_stable_id(db, settings):
    ids = [job.id for job in scheduler.JOBS]
    assert len(ids) == len(set(ids)) and set(ids) == JOB_IDS
    built = scheduler.build_scheduler(db, settings)  # jobs are added, never started here
    assert {job.id for job in built.get_jobs()} == JOB_IDS
    for job in built.get_jobs():
        assert str(job.trigger) == str(scheduler.get_job(job.id).trigger(settings))


def test_build_payouts_follows_payout_schedule(database_url):
    weekly = scheduler.get_job("build_payouts").trigger(make_settings(database_url))
    assert weekly.get_next_fire_time(None, NOW) == dt.datetime(2026, 3, 16, 0, 0, tzinfo=UTC)  # next Monday
    daily = scheduler.get_job("build_payouts").trigger(make_settings(database_url, payout_schedule="0 6 * * *"))
    assert daily.get_next_fire_time(None, NOW) == dt.datetime(2026, 3, 10, 6, 0, tzinfo=UTC)


def test_a_run_belongs_to_the_latest_fire_time(settings):
    def period(job_id, at):
        return scheduler.period_of(scheduler.get_job(job_id), settings, at)

    assert period("build_payouts", NOW) == dt.datetime(2026, 3, 9, tzinfo=UTC)  # Monday noon -> Monday 00:00
    assert period("build_payouts", NOW + dt.timedelta(days=6)) == dt.datetime(2026, 3, 9, tzinfo=UTC)
    assert period("settle_payouts", NOW + dt.timedelta(minutes=7, seconds=3)) == NOW + dt.timedelta(minutes=5)
    assert period("recover_payouts", NOW + dt.timedelta(minutes=1)) == NOW - dt.timedelta(minutes=3)
    assert period("deliver_postbacks", NOW + dt.timedelta(seconds=59)) == NOW + dt.timedelta(seconds=55)


def test_a_period_runs_once_and_run_now_always_runs(db, session, settings, exports):
    shop = make_shop(session)
    partner = make_partner(session)
    make_commission(session, offer=shop.offer, partner=partner, payout="50.00")
    first = scheduler.run_job(db, settings, "build_payouts", now=NOW)
    again = scheduler.run_job(db, settings, "build_payouts", now=NOW + dt.timedelta(hours=3))
    assert (first["ran"], first["result"]["built"], again["ran"]) == (True, 1, False)
    assert first["period"] == again["period"] == "2026-03-09T00:00:00+00:00"
    next_week = scheduler.run_job(db, settings, "build_payouts", now=NOW + dt.timedelta(days=7))
    assert (next_week["ran"], next_week["result"]["built"]) == (True, 0)
    claims = session.execute(select(JobClaim.period_key, JobClaim.outcome).order_by(JobClaim.id)).all()
    assert claims == [("2026-03-09T00:00:00+00:00", "ok"), ("2026-03-16T00:00:00+00:00", "ok")]
    by_hand = scheduler.run_now(db, settings, "build_payouts")
    assert by_hand["ran"] and by_hand["period"].startswith("manual:")
    # Claims of periods long past are pruned as new runs finish.
    claims = session.execute(select(JobClaim.period_key, JobClaim.outcome)).all()
    assert claims == [(by_hand["period"], "ok")]
    assert len(session.scalars(select(Payout)).all()) == 1


def test_every_job_runs(committed_db, settings, exports):
    # Real commits: the postback delivery job sends from several threads, each with its own connection.
    for job_id in sorted(JOB_IDS):
        assert scheduler.run_now(committed_db, settings, job_id)["ran"], job_id


def test_cli_list_run_now_and_payouts_run(app, session, exports):
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["scheduler", "list"])
    assert listed.exit_code == 0, listed.output
    assert {line.split()[0] for line in listed.output.splitlines()} == JOB_IDS
    result = runner.invoke(args=["scheduler", "run-now", "accrue_traffic"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["ran"] is True
    assert runner.invoke(args=["scheduler", "run-now", "no_such_job"]).exit_code == 2

    shop = make_shop(session)
    make_commission(session, offer=shop.offer, partner=make_partner(session), payout="70.00")
    result = runner.invoke(args=["payouts", "run", "--export-dir", str(exports)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert len(summary["built"]) == 1 and summary["paid"] == []


def test_scheduler_run_starts_in_its_own_process_and_stops_on_sigterm(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'scheduler.db'}",
        "SECRET_KEY": "test-secret-key",
        "PYTHONPATH": str(ROOT),
    }
    with subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "run"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    ) as proc:
        try:
            assert proc.stderr is not None
            lines: queue.Queue[str] = queue.Queue()
            threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
            seen: set[str] = set()
            while seen != JOB_IDS:
                try:
                    line = lines.get(timeout=30)
                except queue.Empty:
                    raise AssertionError(f"the scheduler did not list its jobs; saw {seen}") from None
                if line.startswith("scheduled "):
                    seen.add(line.split()[1])
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
