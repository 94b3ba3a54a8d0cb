"""Commands: `rollups catch-up`: roll up every hour that has ended, by hand (after a restore, a bulk load, a bench)."""

from __future__ import annotations

import json
import time

import click
from flask import current_app
from flask.cli import with_appcontext

from network.reports import rollup


@click.group("rollups")
def rollups_group() -> None:
    """Hourly rollups of clicks and conversions, which reports read."""


@rollups_group.command("catch-up")
@click.option(
    "--mark-all", is_flag=True, help="First mark every hour of the raw rows (rows loaded around the writers)."
)
@with_appcontext
def rollups_catch_up(mark_all: bool) -> None:
    """Roll up every marked hour that has ended; print how many hours and how long it took."""
    database = current_app.extensions["network.db"]
    started = time.monotonic()
    marked = 0
    if mark_all:
        with database.session_scope() as session:
            marked = rollup.mark_everything(session)
    hours = rollup.catch_up(database)
    seconds = round(time.monotonic() - started, 3)
    click.echo(json.dumps({"marked": marked, "hours": hours, "seconds": seconds}))


commands = [rollups_group]
