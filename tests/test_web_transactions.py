"""network/web.py: the request ends its transactions; a view commits before calling out through it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, insert, select

from network import web
from network.clock import UTC
from network.payouts.models import JobClaim


def _claims(database) -> int:
    with database.reading() as session:
        return session.scalar(select(func.count()).select_from(JobClaim).where(JobClaim.job_id == "web-probe"))


def test_work_committed_before_calling_out_stays_though_the_request_fails_afterwards(committed_app, committed_db):
    row = {"job_id": "web-probe", "claimed_by": "test", "claimed_at": dt.datetime.now(UTC)}
    with committed_app.test_request_context("/"):
        web.session().execute(insert(JobClaim), [{**row, "period_key": "before"}])
        web.commit_before_calling_out()
        assert _claims(committed_db) == 1  # visible to other connections: no transaction is open
        web.session().execute(insert(JobClaim), [{**row, "period_key": "after"}])
        committed_app.do_teardown_request(RuntimeError("the view failed after its call"))
    assert _claims(committed_db) == 1  # what came after was rolled back with the request


def test_committing_before_calling_out_without_a_session_opens_none(committed_app):
    with committed_app.test_request_context("/"):
        web.commit_before_calling_out()
        assert "session" not in web._state()
