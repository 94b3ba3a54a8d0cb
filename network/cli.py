"""Commands every deployment needs: `db` (migrations), `keys`, `demo`."""

from __future__ import annotations

import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import click
from alembic import command
from flask import current_app
from flask.cli import with_appcontext

from network import migrate
from network.auth import Role
from network.db import Database


def _db() -> Database:
    return current_app.extensions["network.db"]


@click.group("db")
def db_group() -> None:
    """Migrate the database schema (alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Bring the database to REVISION (default: head)."""
    _ensure_sqlite_dir(_db().url)
    migrate.upgrade(_db().url, revision)


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Take the database back to REVISION."""
    migrate.downgrade(_db().url, revision)


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the database's revision."""
    command.current(migrate.alembic_config(_db().url))


@db_group.command("check")
@with_appcontext
def db_check() -> None:
    """Fail if the models differ from what the migrations build."""
    command.check(migrate.alembic_config(_db().url))


def _ensure_sqlite_dir(url: str) -> None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


@click.group("keys")
def keys_group() -> None:
    """Manage API keys."""


@keys_group.command("create")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--brand", "brand_id", type=int, default=None, help="Bind a brand key to this brand id.")
@click.option("--partner", "partner_id", type=int, default=None, help="Bind a partner key to this partner id.")
@click.option("--label", default=None)
@with_appcontext
def keys_create(role: str, brand_id: int | None, partner_id: int | None, label: str | None) -> None:
    """Create an API key and print it as the last line (it is not shown again)."""
    from network.accounts import service
    from network.errors import DomainError

    try:
        with _db().session_scope() as session:
            row, key = service.create_key(session, role=role, brand_id=brand_id, partner_id=partner_id, label=label)
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc
    click.echo(f"# key {row.id} ({row.role}) created; store it now, it is not shown again", err=True)
    click.echo(key)


@keys_group.command("list")
@with_appcontext
def keys_list() -> None:
    """List keys (id, prefix, role, binding, revoked); never the keys themselves."""
    from sqlalchemy import select

    from network.accounts.models import ApiKey

    with _db().session_scope() as session:
        for row in session.scalars(select(ApiKey).order_by(ApiKey.id)):
            bound = f"brand={row.brand_id}" if row.brand_id else f"partner={row.partner_id}" if row.partner_id else "-"
            revoked = f"revoked {row.revoked_at.isoformat()}" if row.revoked_at else "active"
            click.echo(f"{row.id}\t{row.prefix}\t{row.role}\t{bound}\t{revoked}\t{row.label or ''}")


@keys_group.command("revoke")
@click.argument("key_id", type=int)
@with_appcontext
def keys_revoke(key_id: int) -> None:
    """Revoke key KEY_ID at once."""
    from network.accounts import service
    from network.auth import SYSTEM
    from network.errors import DomainError

    try:
        with _db().session_scope() as session:
            row = service.revoke_key(session, SYSTEM, key_id)
            click.echo(f"key {row.id} ({row.prefix}...) revoked")
    except DomainError as exc:
        raise click.ClickException(exc.message) from exc


@click.group("demo")
def demo_group() -> None:
    """Demo data for trying the network."""


@demo_group.command("seed")
@click.option(
    "--env-file", default=None, help="Where to keep the demo's keys and ids (default instance/demo-keys.env)."
)
@with_appcontext
def demo_seed(env_file: str | None) -> None:
    """Create a demo network when the database is empty and print how to use it."""
    from network import demo

    settings = current_app.extensions["network.settings"]
    keys_file = Path(env_file) if env_file else demo.KEYS_FILE
    with _db().session_scope() as session:
        info = demo.seed(session, settings, keys_file)
    click.echo(demo.instructions(info, settings.public_base_url, keys_file))


@click.group("scheduler")
def scheduler_group() -> None:
    """The job scheduler (run it in its own process)."""


def _settings() -> Any:
    return current_app.extensions["network.settings"]


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=True))


@scheduler_group.command("run")
@with_appcontext
def scheduler_run() -> None:
    """Run the scheduler in the foreground until interrupted."""
    from network import scheduler

    settings = _settings()
    sched = scheduler.build_scheduler(_db(), settings)

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

    for row in scheduler.describe(_settings()):
        click.echo(f"{row['id']:<18} {row['next'].isoformat():<26} {row['trigger']:<48} {row['description']}")


@scheduler_group.command("status")
@with_appcontext
def scheduler_status() -> None:
    """Show each job's schedule, last success (time, duration, outcome) and last failure, as a JSON list."""
    from network.auth import SYSTEM
    from network.payouts import jobstatus
    from network.payouts.schemas import JobStatusSchema
    from network.schemas import attrs

    with _db().session_scope() as session:
        rows = jobstatus.list_jobs(session, SYSTEM, limit=1000)
        _echo([JobStatusSchema().dump(attrs(row, JobStatusSchema)) for row in rows])


@scheduler_group.command("run-now")
@click.argument("job_id")
@with_appcontext
def scheduler_run_now(job_id: str) -> None:
    """Run one job now (by its id, see `scheduler list`)."""
    from network import scheduler

    try:
        scheduler.get_job(job_id)
    except KeyError:
        raise click.BadParameter(f"unknown job {job_id!r}; see `scheduler list`", param_hint="JOB_ID") from None
    _echo(scheduler.run_now(_db(), _settings(), job_id))


commands = [db_group, keys_group, demo_group, scheduler_group]
