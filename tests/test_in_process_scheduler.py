"""One-machine use: SCHEDULER_IN_PROCESS runs the job list inside the web process."""

from __future__ import annotations

from network.app import create_app
from network.scheduler import JOBS
from tests.conftest import make_settings


def test_scheduler_in_process_starts_every_job(committed_db):
    settings = make_settings(committed_db.url, testing=False, scheduler_in_process=True)
    app = create_app(settings, database=committed_db)
    scheduler = app.extensions["network.scheduler"]
    try:
        assert scheduler.running
        assert {job.id for job in scheduler.get_jobs()} == {job.id for job in JOBS}
    finally:
        scheduler.shutdown(wait=True)


def test_web_app_runs_no_scheduler_by_default(app):
    assert "network.scheduler" not in app.extensions


def test_stripe_onboarding_landing_pages_answer(client):
    assert client.get("/stripe/onboarding/return").status_code == 200
    assert "expired" in client.get("/stripe/onboarding/refresh").get_data(as_text=True)
    assert client.get("/stripe/onboarding/other").status_code == 404
