"""/healthz answers while the process serves; /readyz checks the database, the migrations and the scheduler."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket

from network import migrate
from network.app import create_app
from network.clock import UTC
from network.payouts.models import JobStatus
from tests.conftest import make_settings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


def test_healthz_and_readyz_answer_a_ready_app(client):
    assert client.get("/healthz").json == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "scheduler": "not_required"},
        "failing": [],
    }


def test_readyz_is_503_naming_the_database_when_it_does_not_answer():
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/network"
    client = create_app(make_settings(url)).test_client()
    assert client.get("/healthz").status_code == 200  # alive all the same
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["database", "migrations", "scheduler"]
    assert r.json["checks"]["database"] == "unavailable" and "postgres" not in r.get_data(as_text=True)


def test_readyz_is_503_when_the_schema_is_not_at_the_migrations_head(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    migrate.upgrade(url, "0004")
    r = create_app(make_settings(url)).test_client().get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["migrations"]
    assert r.json["checks"]["migrations"].startswith("at 0004, head is ")


def test_readyz_requires_a_recent_job_run_only_when_asked(settings, committed_db):
    client = create_app(dataclasses.replace(settings, ready_scheduler_minutes=10), database=committed_db).test_client()
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["failing"] == ["scheduler"]
    assert r.json["checks"]["scheduler"] == "no job has run"
    now = dt.datetime.now(UTC)
    with committed_db.session_scope() as session:
        session.add(
            JobStatus(
                job_id="old", description="", schedule="", declared_at=now, last_success_at=now - dt.timedelta(hours=1)
            )
        )
        session.add(
            JobStatus(
                job_id="failed",
                description="",
                schedule="",
                declared_at=now,
                last_failure_at=now - dt.timedelta(minutes=20),
            )
        )
    r = client.get("/readyz")
    assert r.status_code == 503 and r.json["checks"]["scheduler"] == "no job ran in 10 minutes"
    with committed_db.session_scope() as session:
        session.add(
            JobStatus(
                job_id="recent",
                description="",
                schedule="",
                declared_at=now,
                last_failure_at=now - dt.timedelta(minutes=2),
            )
        )
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json["checks"]["scheduler"] == "ok"
