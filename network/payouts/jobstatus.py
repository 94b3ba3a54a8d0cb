"""What an operator sees of the scheduled jobs: each one's schedule, last success and last failure.

The scheduler (network/scheduler.py) calls these as it starts and as runs end; `GET /api/v1/jobs`
and `flask scheduler status` read them. A failure the database could not be told about when it
happened (the database was the failure) is recorded with the run that follows it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.db import paged
from network.payouts.models import JobStatus
from network.payouts.tables import insert_ignoring_duplicates, job_status

#: Longest outcome or reason kept (the rest is in the log).
_TEXT_LEN = 2000


@dataclass(frozen=True)
class JobInfo:
    """A job as the scheduler declares it."""

    job_id: str
    description: str
    schedule: str
    next_run_at: dt.datetime | None


def _ensure(session: Session, job: JobInfo, now: dt.datetime) -> None:
    row = {
        "job_id": job.job_id,
        "description": job.description[:255],
        "schedule": job.schedule[:255],
        "declared_at": now,
        "next_run_at": job.next_run_at,
        "failures": 0,
    }
    insert_ignoring_duplicates(session, job_status, [row], "job_id")


def declare(session: Session, jobs: Sequence[JobInfo], *, now: dt.datetime) -> dict[str, dt.datetime]:
    """Record the jobs' schedules; return when each was first declared (now for a job new here)."""
    for job in jobs:
        _ensure(session, job, now)
        session.execute(
            update(JobStatus)
            .where(JobStatus.job_id == job.job_id)
            .values(description=job.description[:255], schedule=job.schedule[:255], next_run_at=job.next_run_at)
        )
    ids = [job.job_id for job in jobs]
    rows = session.execute(select(JobStatus.job_id, JobStatus.declared_at).where(JobStatus.job_id.in_(ids)))
    return {row.job_id: row.declared_at for row in rows}


def record_success(
    session: Session, job: JobInfo, *, period: str, finished: dt.datetime, duration_ms: int, outcome: str
) -> None:
    """Record a run that succeeded: its time, how long it took and what it returned."""
    _record(
        session,
        job,
        finished,
        last_success_at=finished,
        last_success_period=period[:64],
        last_success_ms=min(max(0, duration_ms), 2**31 - 1),
        last_success_outcome=outcome[:_TEXT_LEN],
        next_run_at=job.next_run_at,
        failures=0,
    )


def record_failure(session: Session, job: JobInfo, *, period: str, at: dt.datetime, reason: str, tries: int) -> None:
    """Record a failed run (or `tries` failed tries of one): when, for which period, and why."""
    _record(
        session,
        job,
        at,
        last_failure_at=at,
        last_failure_period=period[:64],
        last_failure_reason=reason[:_TEXT_LEN],
        failures=JobStatus.failures + tries,
    )


def _record(session: Session, job: JobInfo, at: dt.datetime, **values: Any) -> None:
    """Write `values` on the job's status row, making the row first for a job not declared yet."""
    _ensure(session, job, at)
    session.execute(update(JobStatus).where(JobStatus.job_id == job.job_id).values(**values))


def list_jobs(session: Session, principal: Principal, *, limit: int, after: int | None = None) -> list[JobStatus]:
    """Return the jobs' status rows (admin and finance)."""
    require(principal, Role.ADMIN, Role.FINANCE)
    return list(session.scalars(paged(select(JobStatus), JobStatus.id, limit=limit, after=after)))
