"""Commands: `payouts` (run, recover): the payout jobs by hand, calling the payouts domain directly.

The `scheduler` commands belong with the scheduler (network/cli.py): jobs call domains, never the reverse."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

# Importing the jobs connects the ledger to conversion signals in CLI and scheduler processes too.
from network.payouts import jobs


def _context() -> tuple[Any, Any]:
    return current_app.extensions["network.db"], current_app.extensions["network.settings"]


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, default=str, sort_keys=True))


@click.group("payouts")
def payouts_group() -> None:
    """Payout runs by hand."""


@payouts_group.command("run")
@click.option("--export-dir", default=None, help="Where the manual gateway writes its CSV (default: instance/).")
@with_appcontext
def payouts_run(export_dir: str | None) -> None:
    """Mature holds, build payouts, settle approved ones, then finish any left in processing."""
    database, settings = _context()
    summary = jobs.run_payouts(database, settings, export_dir=export_dir)
    recovered = jobs.recover_payouts(database, settings, export_dir=export_dir)
    _echo({**summary.as_dict(), "recovered": recovered.as_dict()})


@payouts_group.command("recover")
@with_appcontext
def payouts_recover() -> None:
    """Finish payouts left in processing (a crash or an unknown outcome)."""
    database, settings = _context()
    _echo(jobs.recover_payouts(database, settings).as_dict())


commands = [payouts_group]
