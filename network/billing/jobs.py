"""Billing work run by the scheduler and the CLI, each step in its own transaction."""

from __future__ import annotations

import datetime as dt

from network.billing import collect, credit, invoicing
from network.billing.stripe_invoicing import StripeInvoicing
from network.clock import now_utc
from network.config import Settings
from network.db import Database


def build_invoices(database: Database, *, run_key: str, period_end: dt.datetime | None = None) -> list[int]:
    """Build the draft invoices of every brand and currency from entries booked before `period_end` (default now)."""
    now = now_utc()
    with database.session_scope() as session:
        return invoicing.build_invoices(session, run_key=run_key, period_end=period_end or now, now=now)


def invoicing_client(settings: Settings) -> StripeInvoicing | None:
    """Return Stripe Invoicing when STRIPE_API_KEY is set; None: the manual gateway (PDF, CSV, marked paid)."""
    if not settings.stripe_api_key:
        return None
    return StripeInvoicing(api_key=settings.stripe_api_key, api_base=settings.stripe_api_base)


def send_invoices(database: Database, settings: Settings, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Take every issued Stripe invoice as far as sent (after an issue, a crash or an unknown outcome)."""
    client = invoicing_client(settings)
    if client is None:
        return {}
    try:
        return collect.send_due(database, client, now=now)
    finally:
        client.close()


def check_credit(database: Database, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Hold brands that reached their credit limit, release those that paid (every minute)."""
    with database.session_scope() as session:
        return credit.refresh_holds(session, now=now)
