"""The one declarative list of scheduled jobs, and the APScheduler process that runs them.

Run it in its own process (`flask --app wsgi scheduler run`), never in every web worker. Any
number may run at once: each run of a job first claims its period (the trigger's fire time) with
a unique row in job_claims, so a second scheduler firing the same period finds it taken and does
nothing. Jobs are wall-clock cron triggers, so every scheduler fires the same periods.
This is the only module that imports apscheduler."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import os
import socket
import traceback
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Table, delete, update

from network.clock import UTC, now_utc
from network.config import Settings
from network.db import Database, insert_for

log = logging.getLogger(__name__)

#: How long a job's claims are kept (for `scheduler` diagnostics) before they are pruned.
CLAIMS_KEPT = dt.timedelta(days=14)


@dataclass(frozen=True)
class JobContext:
    """What a job run gets: the database, the settings and the time it runs for."""

    database: Database
    settings: Settings
    now: dt.datetime


@dataclass(frozen=True)
class Job:
    """A scheduled job: a stable id, what it does, when (cron fields in UTC), and its runner."""

    id: str
    description: str
    #: CronTrigger fields ({"minute": "*/5"}), or a function of the settings returning a crontab line.
    when: dict[str, str] | Callable[[Settings], str]
    run: Callable[[JobContext], Any]

    def trigger(self, settings: Settings) -> CronTrigger:
        """Return the job's trigger for these settings."""
        if callable(self.when):
            return CronTrigger.from_crontab(self.when(settings), timezone=UTC)
        return CronTrigger(timezone=UTC, **self.when)


# ---- runners: import their domain lazily, so a domain that is not there yet costs nothing ----------


def _mature_holds(ctx: JobContext) -> Any:
    from network.payouts import jobs

    return {"matured": jobs.mature_holds(ctx.database, now=ctx.now)}


def _build_payouts(ctx: JobContext) -> Any:
    from network.payouts import jobs

    summary = jobs.run_payouts(ctx.database, ctx.settings, steps=("mature", "build"))
    return {"run": summary.run_id, "matured": summary.matured, "built": len(summary.built)}


def _settle_payouts(ctx: JobContext) -> Any:
    from network.payouts import jobs

    summary = jobs.settle_approved(ctx.database, ctx.settings)
    return {
        "run": summary.run_id,
        "paid": len(summary.paid),
        "failed": len(summary.failed),
        "unknown": len(summary.unknown),
    }


def _recover_payouts(ctx: JobContext) -> Any:
    from network.payouts import jobs

    summary = jobs.recover_payouts(ctx.database, ctx.settings)
    return {"paid": len(summary.paid), "failed": len(summary.failed), "unknown": len(summary.unknown)}


def _accrue_traffic(ctx: JobContext) -> Any:
    from network.payouts import jobs

    return {"booked": jobs.accrue_traffic(ctx.database, now=ctx.now)}


def _purge_click_ips(ctx: JobContext) -> Any:
    if importlib.util.find_spec("network.tracking.jobs") is None:
        return {"skipped": "network.tracking.jobs is not installed"}
    from network.tracking import jobs

    with ctx.database.session_scope() as session:
        purged = jobs.purge_click_ips(session, now=ctx.now, retention_days=ctx.settings.click_ip_retention_days)
    return {"purged": purged}


def _deliver_postbacks(ctx: JobContext) -> Any:
    # SLOT: partner postback delivery, owned by the deliveries domain (network/deliveries/jobs.py).
    if importlib.util.find_spec("network.deliveries.jobs") is None:
        return {"skipped": "network.deliveries.jobs is not installed"}
    from network.deliveries import jobs

    return {"sent": jobs.deliver_due(ctx.database, ctx.settings)}


#: Every scheduled job. Ids are stable: job_claims rows and `scheduler run-now` name them.
JOBS: tuple[Job, ...] = (
    Job("mature_holds", "Approve pending conversions whose hold has passed", {"minute": "*/10"}, _mature_holds),
    Job(
        "build_payouts",
        "Mature holds, then build pending_approval payouts (PAYOUT_SCHEDULE, default Monday 00:00 UTC)",
        lambda settings: settings.payout_schedule,
        _build_payouts,
    ),
    Job("settle_payouts", "Send approved payouts through the gateway", {"minute": "*/5"}, _settle_payouts),
    Job(
        "recover_payouts",
        "Finish payouts left in processing (crash or unknown outcome)",
        {"minute": "2-59/5"},
        _recover_payouts,
    ),
    Job("accrue_traffic", "Book CPC and CPM earnings of the past days", {"hour": "0", "minute": "30"}, _accrue_traffic),
    Job(
        "purge_click_ips",
        "Remove raw click IPs older than CLICK_IP_RETENTION_DAYS",
        {"hour": "3", "minute": "15"},
        _purge_click_ips,
    ),
    Job("deliver_postbacks", "Send due partner postbacks", {"second": "*/5"}, _deliver_postbacks),
)


def get_job(job_id: str) -> Job:
    """Return the job with this id, or raise KeyError."""
    for job in JOBS:
        if job.id == job_id:
            return job
    raise KeyError(job_id)


def period_of(job: Job, settings: Settings, now: dt.datetime) -> dt.datetime:
    """Return the fire time of `job` this run belongs to: the latest one at or before `now`."""
    trigger = job.trigger(settings)
    for lookback in (dt.timedelta(hours=1), dt.timedelta(days=2), dt.timedelta(days=32), dt.timedelta(days=400)):
        fire = trigger.get_next_fire_time(None, now - lookback)
        if fire is None or fire > now:
            continue
        for _ in range(100_000):
            following = trigger.get_next_fire_time(fire, fire + dt.timedelta(microseconds=1))
            if following is None or following > now:
                return fire.astimezone(UTC)
            fire = following
    return now.replace(microsecond=0)


def claim(database: Database, job_id: str, period_key: str, *, now: dt.datetime) -> int | None:
    """Claim one period of a job in its own committed transaction; None when it was claimed already."""
    from network.payouts.models import JobClaim

    table = typing.cast(Table, JobClaim.__table__)
    with database.session_scope() as session:
        return session.execute(
            insert_for(database.dialect)(table)
            .values(
                job_id=job_id,
                period_key=period_key,
                claimed_by=f"{socket.gethostname()}:{os.getpid()}"[:128],
                claimed_at=now,
            )
            .on_conflict_do_nothing(index_elements=["job_id", "period_key"])
            .returning(table.c.id)
        ).scalar_one_or_none()


def _finish(database: Database, claim_id: int, job_id: str, now: dt.datetime, outcome: str, details: str) -> None:
    from network.payouts.models import JobClaim

    table = typing.cast(Table, JobClaim.__table__)
    with database.session_scope() as session:
        session.execute(
            update(table)
            .where(table.c.id == claim_id)
            .values(finished_at=now_utc(), outcome=outcome, details=details[:4000])
        )
        # Old claims decide nothing any more (their periods are long past): keep the table small.
        session.execute(delete(table).where(table.c.job_id == job_id, table.c.claimed_at < now - CLAIMS_KEPT))


def run_job(
    database: Database,
    settings: Settings,
    job_id: str,
    *,
    period_key: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Run one job for one period (default: its latest fire time) unless another scheduler claimed it."""
    job = get_job(job_id)
    now = now or now_utc()
    key = period_key or period_of(job, settings, now).isoformat()
    claim_id = claim(database, job.id, key, now=now)
    if claim_id is None:
        log.info("job %s period %s: already claimed by another scheduler, skipped", job.id, key)
        return {"job": job.id, "period": key, "ran": False}
    try:
        result = job.run(JobContext(database=database, settings=settings, now=now))
    except Exception:
        _finish(database, claim_id, job.id, now, "error", traceback.format_exc())
        log.exception("job %s period %s failed", job.id, key)
        raise
    _finish(database, claim_id, job.id, now, "ok", repr(result))
    log.info("job %s period %s: %s", job.id, key, result)
    return {"job": job.id, "period": key, "ran": True, "result": result}


def run_now(database: Database, settings: Settings, job_id: str) -> dict[str, Any]:
    """Run a job immediately, by hand (its own period, so it never collides with a scheduled run)."""
    now = now_utc()
    return run_job(database, settings, job_id, period_key=f"manual:{now.isoformat()}", now=now)


def _scheduled(database: Database, settings: Settings, job_id: str) -> None:
    try:
        run_job(database, settings, job_id)
    except Exception:  # noqa: BLE001 - the scheduler keeps going; run_job logged and recorded it
        log.debug("job %s raised", job_id)


def build_scheduler(
    database: Database, settings: Settings, *, kind: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    """Return a scheduler (blocking by default) with every job of JOBS added under its stable id."""
    # Every run is logged once by run_job; APScheduler's own two lines per run are noise.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    scheduler = kind(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    for job in JOBS:
        scheduler.add_job(
            _scheduled,
            trigger=job.trigger(settings),
            args=(database, settings, job.id),
            id=job.id,
            name=job.description,
            replace_existing=True,
        )
    return scheduler


def start_in_process(database: Database, settings: Settings) -> BaseScheduler:
    """Start the jobs in a background thread of this process (one-machine use, one web worker)."""
    scheduler = build_scheduler(database, settings, kind=BackgroundScheduler)
    scheduler.start()
    return scheduler


def on_started(scheduler: BaseScheduler, callback: Callable[[], None]) -> None:
    """Call `callback` once the scheduler has started (its jobs are then scheduled)."""
    scheduler.add_listener(lambda _event: callback(), EVENT_SCHEDULER_STARTED)


def describe(settings: Settings, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Return each job's id, trigger, next fire time and description."""
    now = now or now_utc()
    rows = []
    for job in JOBS:
        trigger = job.trigger(settings)
        rows.append(
            {
                "id": job.id,
                "trigger": str(trigger),
                "next": trigger.get_next_fire_time(None, now),
                "description": job.description,
            }
        )
    return rows
