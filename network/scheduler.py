"""The one declarative list of scheduled jobs, and the APScheduler process that runs them.

Run it in its own process (`flask --app wsgi scheduler run`), never in every web worker. Any
number may run at once: each run of a job first claims its period (the trigger's fire time) with
a unique row in job_claims, so a second scheduler firing the same period finds it taken and does
nothing. Jobs are wall-clock cron triggers, so every scheduler fires the same periods. A failed
try is retried and a missed period caught up (network/jobruns.py, which runs the jobs). This is the only module that imports apscheduler."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN, EVENT_SCHEDULER_STARTED
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from network.clock import UTC, now_utc
from network.config import Settings
from network.db import Database

log = logging.getLogger(__name__)


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
    #: CronTrigger fields ({"minute": "*/5"}), or a function of the settings returning a crontab line (or fields).
    when: dict[str, str] | Callable[[Settings], str | dict[str, str]]
    run: Callable[[JobContext], Any]
    #: Run the latest period at the next start when no scheduler ran it (jobs of hours or days;
    #: a frequent job's next run does the same work within minutes anyway).
    catch_up: bool = False

    def trigger(self, settings: Settings) -> CronTrigger:
        """Return the job's trigger for these settings."""
        when = self.when(settings) if callable(self.when) else self.when
        if isinstance(when, str):
            return CronTrigger.from_crontab(when, timezone=UTC)
        return CronTrigger(timezone=UTC, **when)


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
    from network.partners import addresses
    from network.tracking import jobs

    days = ctx.settings.click_ip_retention_days
    with ctx.database.session_scope() as session:
        purged = jobs.purge_click_ips(session, now=ctx.now, retention_days=days)
        # The partners' own addresses (self-referral) are kept for the same fraud window.
        forgotten = addresses.purge(session, now=ctx.now, retention_days=days)
    return {"purged": purged, "partner_addresses": forgotten}


def _keep_click_partitions(ctx: JobContext) -> Any:
    from network.tracking import jobs

    return jobs.keep_click_partitions(ctx.database, now=ctx.now, retention_months=ctx.settings.click_retention_months)


def _deliver_postbacks(ctx: JobContext) -> Any:
    # SLOT: partner postback delivery, owned by the deliveries domain (network/deliveries/jobs.py).
    if importlib.util.find_spec("network.deliveries.jobs") is None:
        return {"skipped": "network.deliveries.jobs is not installed"}
    from network.deliveries import jobs

    return {"sent": jobs.deliver_due(ctx.database, ctx.settings)}


def _roll_up(ctx: JobContext) -> Any:
    from network.reports import rollup

    return {"hours": rollup.roll_up(ctx.database, now=ctx.now)}


def _flag_anomalies(ctx: JobContext) -> Any:
    from network.conversions import anomalies

    with ctx.database.session_scope() as session:
        return {"flagged": anomalies.flag_anomalies(session, now=ctx.now)}


def _build_invoices(ctx: JobContext) -> Any:
    from network.billing import jobs

    # Each run bills what was booked before its own fire time (the month that just ended, by default).
    period = period_of(get_job("build_invoices"), ctx.settings, ctx.now)
    ids = jobs.build_invoices(ctx.database, run_key=period.isoformat(), period_end=period)
    return {"invoices": len(ids)}


def _send_invoices(ctx: JobContext) -> Any:
    from network.billing import jobs

    return jobs.send_invoices(ctx.database, ctx.settings, now=ctx.now)


def _check_credit(ctx: JobContext) -> Any:
    from network.billing import jobs

    return jobs.check_credit(ctx.database, now=ctx.now)


#: Every scheduled job. Ids are stable: job_claims rows and `scheduler run-now` name them.
JOBS: tuple[Job, ...] = (
    Job("mature_holds", "Approve pending conversions whose hold has passed", {"minute": "*/10"}, _mature_holds),
    Job(
        "build_payouts",
        "Mature holds, then build pending_approval payouts (PAYOUT_SCHEDULE, default Monday 00:00 UTC)",
        lambda settings: settings.payout_schedule,
        _build_payouts,
        catch_up=True,
    ),
    Job("settle_payouts", "Send approved payouts through the gateway", {"minute": "*/5"}, _settle_payouts),
    Job(
        "recover_payouts",
        "Finish payouts left in processing (crash or unknown outcome)",
        {"minute": "2-59/5"},
        _recover_payouts,
    ),
    Job(
        "accrue_traffic",
        "Book CPC and CPM earnings of the past days",
        {"hour": "0", "minute": "30"},
        _accrue_traffic,
        True,
    ),
    Job(
        "purge_click_ips",
        "Remove raw click IPs and partners' addresses older than CLICK_IP_RETENTION_DAYS",
        {"hour": "3", "minute": "15"},
        _purge_click_ips,
        catch_up=True,
    ),
    Job(
        "keep_click_partitions",
        "Make the click partitions of the coming months; drop clicks older than CLICK_RETENTION_MONTHS",
        {"hour": "2", "minute": "45"},
        _keep_click_partitions,
    ),
    Job("deliver_postbacks", "Send due partner postbacks", {"second": "*/5"}, _deliver_postbacks),
    Job(
        "roll_up",
        "Roll up the marked hours that have ended (ROLLUP_EVERY_SECONDS, default 5)",
        lambda settings: {"second": f"*/{settings.rollup_every_seconds}"},
        _roll_up,
    ),
    Job(
        "flag_anomalies",
        "Flag for review the conversions of partners whose conversion rate or time to convert on an offer is far "
        "from the offer's median over the last 7 days",
        {"hour": "4", "minute": "30"},
        _flag_anomalies,  # no catch-up: the next run looks back over the days a missed one would have
    ),
    Job(
        "build_invoices",
        "Build draft invoices of the brands' unbilled entries (BILLING_SCHEDULE, default monthly, the 1st 00:00 UTC)",
        lambda settings: settings.billing_schedule,
        _build_invoices,
        catch_up=True,
    ),
    Job(
        "send_invoices",
        "Send issued invoices to Stripe Invoicing and finish any left between phases",
        {"minute": "1-59/5"},
        _send_invoices,
    ),
    Job(
        "check_credit",
        "Send the clicks of brands over their credit limit to the fallback; release those that paid",
        {"minute": "*"},
        _check_credit,
    ),
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


def _scheduled(database: Database, settings: Settings, job_id: str, stop: threading.Event) -> None:
    try:
        jobruns.run_scheduled(database, settings, job_id, stop=stop)
    except Exception:
        log.exception("job %s: unexpected error in the scheduler", job_id)


def build_scheduler(
    database: Database, settings: Settings, *, kind: type[BaseScheduler] = BlockingScheduler
) -> BaseScheduler:
    """Return a scheduler (blocking by default) with every job of JOBS added under its stable id.

    Once started it looks for missed periods (`catch_up`) in a thread of its own; on shutdown, runs
    waiting to retry stop waiting.
    """
    # Every run is logged once by run_job; APScheduler's own two lines per run are noise.
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)
    scheduler = kind(
        timezone=UTC,
        # A fire time missed by up to misfire_grace_time (the process was busy or paused) still
        # runs, once (coalesce); a period missed for longer is caught_up at the next start.
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
    )
    stop = threading.Event()
    for job in JOBS:
        scheduler.add_job(
            _scheduled,
            trigger=job.trigger(settings),
            args=(database, settings, job.id, stop),
            id=job.id,
            name=job.description,
            replace_existing=True,
        )

    def _started(_event: Any) -> None:
        stop.clear()
        threading.Thread(
            target=jobruns.catch_up_at_start, args=(database, settings, stop), name="scheduler-catch-up", daemon=True
        ).start()

    scheduler.add_listener(_started, EVENT_SCHEDULER_STARTED)
    scheduler.add_listener(lambda _event: stop.set(), EVENT_SCHEDULER_SHUTDOWN)
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


# Running the jobs (after JOBS: network.jobruns reads them when it runs one). Re-exported for the
# CLI and tests, which run jobs through this module.
from network import jobruns  # noqa: E402
from network.jobruns import JobFailed, catch_up, claim, run_job, run_now, run_scheduled  # noqa: E402

__all__ = [
    "JOBS", "Job", "JobContext", "JobFailed", "build_scheduler", "catch_up", "claim", "describe", "get_job",
    "on_started", "period_of", "run_job", "run_now", "run_scheduled", "start_in_process",
]  # fmt: skip
