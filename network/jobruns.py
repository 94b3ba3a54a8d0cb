"""Running a scheduled job: claiming its period, recording how it ended, retrying a failed try, and
catching up a missed period (network/scheduler.py declares the jobs and runs APScheduler).

Each run of a job first claims its period (the trigger's fire time) with a unique row in
job_claims, so a second scheduler firing the same period finds it taken and does nothing. A try
that cannot claim its period (the database away) or whose job fails is logged at ERROR and
retried, with a growing pause, until it succeeds or the job's next fire time comes
(run_scheduled); a long job's period that no scheduler ran (all stopped, or the database away for
longer) is run at the next start (catch_up). Each job's schedule, last success and last failure
are in job_status (`GET /api/v1/jobs`, `flask scheduler status`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import traceback
import typing
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, delete, select, update

from network import outage
from network.clock import as_utc, now_utc
from network.config import Settings
from network.db import Database, insert_new
from network.payouts import jobstatus

if TYPE_CHECKING:
    from network.scheduler import Job

log = logging.getLogger(__name__)

#: How long a job's claims are kept (for `scheduler` diagnostics) before they are pruned.
CLAIMS_KEPT = dt.timedelta(days=14)
#: A failed try is retried after RETRY_FIRST seconds, then after twice as long each time, up to RETRY_MAX.
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
#: Retries of a period stop this long before the job's next fire time, whose run then takes over.
RETRY_MARGIN = dt.timedelta(seconds=1)


def claim(database: Database, job_id: str, period_key: str, *, now: dt.datetime, retry: bool = False) -> int | None:
    """Claim one period of a job in its own committed transaction; None when it was claimed already.

    `retry`: this process tries the period again, so it may also take over a claim whose run failed
    (outcome error) or its own claim whose run ended before it could record how (the database went
    away meanwhile). One conditional UPDATE decides, so only one scheduler takes it over.
    """
    from network.payouts.models import JobClaim

    table = typing.cast(Table, JobClaim.__table__)
    me = f"{socket.gethostname()}:{os.getpid()}"[:128]
    with database.session_scope() as session:
        claim_id = session.execute(
            insert_new(database.dialect, table, keys=["job_id", "period_key"])
            .values(job_id=job_id, period_key=period_key, claimed_by=me, claimed_at=now)
            .returning(table.c.id)
        ).scalar_one_or_none()
        if claim_id is not None or not retry:
            return claim_id
        failed = (table.c.outcome == "error") | ((table.c.claimed_by == me) & table.c.outcome.is_(None))
        return session.execute(
            update(table)
            .where(table.c.job_id == job_id, table.c.period_key == period_key, failed)
            .values(claimed_by=me, claimed_at=now, finished_at=None, outcome=None)
            .returning(table.c.id)
        ).scalar_one_or_none()


def _info(job: Job, settings: Settings, now: dt.datetime) -> jobstatus.JobInfo:
    trigger = job.trigger(settings)
    return jobstatus.JobInfo(job.id, job.description, str(trigger), trigger.get_next_fire_time(None, now))


def _reason(error: BaseException) -> str:
    """Return an error in one line: its class and the first line of its message (no statement parameters)."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"


def _finish(
    database: Database,
    claim_id: int,
    job: Job,
    settings: Settings,
    period_key: str,
    started: tuple[dt.datetime, float],
    **end: Any,
) -> None:
    """Record how the claimed run ended: on its claim, and in the job's status (one transaction)."""
    from network.payouts.models import JobClaim

    table = typing.cast(Table, JobClaim.__table__)
    finished = now_utc()
    info = _info(job, settings, finished)
    with database.session_scope() as session:
        outcome = "ok" if "error" not in end else "error"
        details = end.get("result", end.get("error", ""))
        session.execute(
            update(table)
            .where(table.c.id == claim_id)
            .values(finished_at=finished, outcome=outcome, details=details[:4000])
        )
        if outcome == "ok":
            jobstatus.record_success(
                session,
                info,
                period=period_key,
                finished=finished,
                duration_ms=round((time.monotonic() - started[1]) * 1000),
                outcome=details,
            )
        else:
            jobstatus.record_failure(session, info, period=period_key, at=finished, reason=end["reason"], tries=1)
        # Old claims decide nothing any more (their periods are long past): keep the table small.
        old = table.c.claimed_at < started[0] - CLAIMS_KEPT
        session.execute(delete(table).where(table.c.job_id == job.id, old))


class JobFailed(RuntimeError):
    """A run that failed: `reason` in one line, `recorded` when its failure is in the job's status."""

    def __init__(self, job_id: str, period_key: str, reason: str, *, recorded: bool) -> None:
        super().__init__(f"job {job_id} period {period_key} failed: {reason}")
        self.reason = reason
        self.recorded = recorded


def run_job(
    database: Database,
    settings: Settings,
    job_id: str,
    *,
    period_key: str | None = None,
    now: dt.datetime | None = None,
    retry: bool = False,
) -> dict[str, Any]:
    """Run one job for one period (default: its latest fire time) unless another scheduler claimed it.

    Raise JobFailed (from the cause) when the period cannot be claimed or the run fails.
    """
    from network.scheduler import JobContext, get_job, period_of

    job = get_job(job_id)
    now = now or now_utc()
    key = period_key or period_of(job, settings, now).isoformat()
    try:
        claim_id = claim(database, job.id, key, now=now, retry=retry)
    except Exception as error:
        raise JobFailed(job.id, key, f"could not claim the period: {_reason(error)}", recorded=False) from error
    if claim_id is None:
        log.info("job %s period %s: already claimed by another scheduler, skipped", job.id, key)
        return {"job": job.id, "period": key, "ran": False}
    started = (now, time.monotonic())
    try:
        result = job.run(JobContext(database=database, settings=settings, now=now))
    except Exception as error:
        reason = _reason(error)
        if not outage.is_unavailable(error):
            log.exception("job %s period %s failed", job.id, key)
        try:
            _finish(database, claim_id, job, settings, key, started, error=traceback.format_exc(), reason=reason)
        except Exception:  # noqa: BLE001 - the database itself may be what failed; the caller retries
            raise JobFailed(job.id, key, reason, recorded=False) from error
        raise JobFailed(job.id, key, reason, recorded=True) from error
    try:
        _finish(database, claim_id, job, settings, key, started, result=repr(result))
    except Exception as error:
        raise JobFailed(job.id, key, f"ran, but could not record it: {_reason(error)}", recorded=False) from error
    log.info("job %s period %s: %s", job.id, key, result)
    return {"job": job.id, "period": key, "ran": True, "result": result}


def run_now(database: Database, settings: Settings, job_id: str) -> dict[str, Any]:
    """Run a job immediately, by hand (its own period, so it never collides with a scheduled run)."""
    now = now_utc()
    return run_job(database, settings, job_id, period_key=f"manual:{now.isoformat()}", now=now)


def _record_failures(
    database: Database,
    job: Job,
    settings: Settings,
    key: str,
    failures: list[tuple[dt.datetime, str]],
    *,
    count: bool = True,
) -> bool:
    """Record tries that failed while the database could not be told; return whether it could now."""
    at, reason = failures[-1]
    tries = len(failures) if count else 0
    try:
        with database.session_scope() as session:
            info = _info(job, settings, at)
            jobstatus.record_failure(session, info, period=key, at=at, reason=reason, tries=tries)
    except Exception:  # noqa: BLE001 - still away: told with the next try
        return False
    return True


def run_scheduled(
    database: Database,
    settings: Settings,
    job_id: str,
    *,
    period: dt.datetime | None = None,
    stop: threading.Event | None = None,
) -> dict[str, Any] | None:
    """Run a job for its period as the scheduler does: a failed try (the database away, the job's
    error) is retried, after RETRY_FIRST seconds doubling up to RETRY_MAX, until it succeeds, the
    scheduler stops, or the job's next fire time comes (that run then does the work). Return the
    run's result, or None when it gave up. Every failed try is logged at ERROR and, once the
    database can be told, recorded in the job's status.
    """
    from network.scheduler import get_job, period_of

    job = get_job(job_id)
    period = period or period_of(job, settings, now_utc())
    key = period.isoformat()
    following = job.trigger(settings).get_next_fire_time(period, period + dt.timedelta(microseconds=1))
    deadline = following - RETRY_MARGIN if following is not None else None
    stop = stop or threading.Event()
    delay, tries = RETRY_FIRST, 0
    untold: list[tuple[dt.datetime, str]] = []
    while True:
        tries += 1
        try:
            result = run_job(database, settings, job.id, period_key=key, now=now_utc(), retry=tries > 1)
        except JobFailed as error:
            if not error.recorded:
                untold.append((now_utc(), error.reason))
                if _record_failures(database, job, settings, key, untold):
                    untold.clear()
            if stop.is_set() or (deadline is not None and now_utc() + dt.timedelta(seconds=delay) > deadline):
                log.error("job %s period %s: try %d failed, giving up: %s", job.id, key, tries, error.reason)
                return None
            log.error(
                "job %s period %s: try %d failed, retrying in %.1f s: %s", job.id, key, tries, delay, error.reason
            )
            if stop.wait(delay):
                return None
            delay = min(delay * 2, RETRY_MAX)
            continue
        if untold:  # shown as the last failure; the success already reset the count of failed tries
            _record_failures(database, job, settings, key, untold, count=False)
        if tries > 1:
            log.warning("job %s period %s: succeeded on try %d", job.id, key, tries)
        return result


def catch_up(
    database: Database, settings: Settings, *, now: dt.datetime | None = None, stop: threading.Event | None = None
) -> list[str]:
    """Declare the jobs (their status rows) and run each catch-up job's latest period when it was
    missed: it fell after the job was first declared (a scheduler was meant to run it) and no
    scheduler claimed it (all were stopped, or the database was away for longer than the retries).
    Return the ids of the jobs caught up."""
    from network.payouts.models import JobClaim
    from network.scheduler import JOBS, period_of

    now = now or now_utc()
    periods = {job.id: period_of(job, settings, now) for job in JOBS if job.catch_up}
    with database.session_scope() as session:
        declared = jobstatus.declare(session, [_info(job, settings, now) for job in JOBS], now=now)
        claimed = {
            (row.job_id, row.period_key)
            for row in session.execute(
                select(JobClaim.job_id, JobClaim.period_key).where(
                    JobClaim.period_key.in_([p.isoformat() for p in periods.values()])
                )
            )
        }
    missed = [
        job_id
        for job_id, period in periods.items()
        if as_utc(declared[job_id]) < period and (job_id, period.isoformat()) not in claimed
    ]
    for job_id in missed:
        log.warning("job %s: period %s was missed; running it now", job_id, periods[job_id].isoformat())
        run_scheduled(database, settings, job_id, period=periods[job_id], stop=stop)
    return missed


def catch_up_at_start(database: Database, settings: Settings, stop: threading.Event) -> None:
    delay = RETRY_FIRST
    while not stop.is_set():
        try:
            catch_up(database, settings, stop=stop)
            return
        except Exception as error:  # noqa: BLE001 - the database may not be up yet: retried
            log.error(
                "scheduler start: could not look for missed periods, retrying in %.0f s: %s", delay, _reason(error)
            )
        if stop.wait(delay):
            return
        delay = min(delay * 2, RETRY_MAX)
