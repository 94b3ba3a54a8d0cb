"""Commands: `scheduler` (run, list, run-now) and `payouts` (run, recover)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

# The ledger listens to conversion signals: make sure it is connected in CLI and scheduler processes.
from network.payouts import ledger as _ledger  # noqa: F401


def _context() -> tuple[Any, Any]:
    return current_app.extensions["network.db"], current_app.extensions["network.settings"]


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=True))


@click.group("scheduler")
def scheduler_group() -> None:
    """The job scheduler (run it in its own process)."""


@scheduler_group.command("run")
@with_appcontext
def scheduler_run() -> None:
    """Run the scheduler in the foreground until interrupted."""
    import signal

    from network import scheduler

    database, settings = _context()
    sched = scheduler.build_scheduler(database, settings)

    def _stop(_signum: int, _frame: Any) -> None:
        if sched.running:
            sched.shutdown(wait=False)

    def _started() -> None:
        for row in scheduler.describe(settings):
            click.echo(f"scheduled {row['id']:<18} next {row['next'].isoformat()}  ({row['trigger']})", err=True)

    signal.signal(signal.SIGTERM, _stop)
    scheduler.on_started(sched, _started)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        sched.start()


@scheduler_group.command("list")
@with_appcontext
def scheduler_list() -> None:
    """List the jobs, their triggers and next run times."""
    from network import scheduler

    _database, settings = _context()
    for row in scheduler.describe(settings):
        click.echo(f"{row['id']:<18} {row['next'].isoformat():<26} {row['trigger']:<48} {row['description']}")


@scheduler_group.command("status")
@with_appcontext
def scheduler_status() -> None:
    """Show each job's schedule, last success (time, duration, outcome) and last failure, as a JSON list."""
    from network.auth import SYSTEM
    from network.payouts import jobstatus
    from network.payouts.schemas import JobStatusSchema
    from network.schemas import attrs

    database, _settings = _context()
    with database.session_scope() as session:
        rows = jobstatus.list_jobs(session, SYSTEM, limit=1000)
        _echo([JobStatusSchema().dump(attrs(row, JobStatusSchema)) for row in rows])


@scheduler_group.command("run-now")
@click.argument("job_id")
@with_appcontext
def scheduler_run_now(job_id: str) -> None:
    """Run one job now (by its id, see `scheduler list`)."""
    from network import scheduler

    database, settings = _context()
    try:
        scheduler.get_job(job_id)
    except KeyError:
        raise click.BadParameter(f"unknown job {job_id!r}; see `scheduler list`", param_hint="JOB_ID") from None
    _echo(scheduler.run_now(database, settings, job_id))


@click.group("payouts")
def payouts_group() -> None:
    """Payout runs by hand."""


@payouts_group.command("run")
@click.option("--export-dir", default=None, help="Where the manual gateway writes its CSV (default: instance/).")
@with_appcontext
def payouts_run(export_dir: str | None) -> None:
    """Mature holds, build payouts, settle approved ones, then finish any left in processing."""
    from network.payouts import jobs

    database, settings = _context()
    summary = jobs.run_payouts(database, settings, export_dir=export_dir)
    recovered = jobs.recover_payouts(database, settings, export_dir=export_dir)
    _echo({**summary.as_dict(), "recovered": recovered.as_dict()})


@payouts_group.command("recover")
@with_appcontext
def payouts_recover() -> None:
    """Finish payouts left in processing (a crash or an unknown outcome)."""
    from network.payouts import jobs

    database, settings = _context()
    _echo(jobs.recover_payouts(database, settings).as_dict())


commands = [scheduler_group, payouts_group]
