"""Billing work run by the scheduler and the CLI, each step in its own transaction."""

from __future__ import annotations

import datetime as dt

from network.billing import invoicing
from network.clock import now_utc
from network.db import Database


def build_invoices(database: Database, *, run_key: str, period_end: dt.datetime | None = None) -> list[int]:
    """Build the draft invoices of every brand and currency from entries booked before `period_end` (default now)."""
    now = now_utc()
    with database.session_scope() as session:
        return invoicing.build_invoices(session, run_key=run_key, period_end=period_end or now, now=now)
