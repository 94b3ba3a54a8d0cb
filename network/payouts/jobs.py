"""Payout work run by the scheduler, the CLI and POST /payout-runs: each step in its own
transactions (see settlement.py), never inside a web request's transaction."""

from __future__ import annotations

import datetime as dt
import importlib.util
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from network.auth import SYSTEM, Principal, Role, require
from network.clock import now_utc
from network.config import Settings
from network.db import Database
from network.payouts import accrual, phases, settlement
from network.payouts import build as building
from network.payouts.gateway import PayoutGateway, gateway_from_config
from network.payouts.models import PayoutRun

log = logging.getLogger(__name__)

#: Days the traffic accrual looks back each run, so a missed day is caught up (idempotent per day).
ACCRUAL_DAYS = 7


def make_gateway(settings: Settings) -> PayoutGateway:
    """Return the configured gateway: Stripe when STRIPE_API_KEY is set, else manual."""
    return gateway_from_config(
        stripe_api_key=settings.stripe_api_key,
        stripe_api_base=settings.stripe_api_base,
        stripe_webhook_secret=settings.stripe_webhook_secret,
    )


def close_gateway(gateway: PayoutGateway) -> None:
    """Release the gateway's HTTP connections, if it holds any."""
    close = getattr(gateway, "close", None)
    if callable(close):
        close()


@dataclass
class RunSummary:
    """What a payout run did."""

    run_id: int
    matured: int = 0
    built: list[int] = field(default_factory=list)
    paid: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    export_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain data."""
        return asdict(self)


def _due(database: Database) -> tuple[bool, bool]:
    with database.session_scope() as session:
        return phases.has_due(session, now=now_utc())


def mature_holds(database: Database, *, now: dt.datetime | None = None) -> int:
    """Approve pending conversions past their hold (conversions' job); 0 when that domain is absent."""
    if importlib.util.find_spec("network.conversions.jobs") is None:
        return 0
    from network.conversions import jobs as conversion_jobs

    with database.session_scope() as session:
        return int(conversion_jobs.mature_holds(session, now=now or now_utc()))


def build(database: Database, settings: Settings, *, principal: Principal = SYSTEM) -> RunSummary:
    """Build pending_approval payouts from the available balances (one run)."""
    require(principal, Role.FINANCE, Role.ADMIN)
    with database.session_scope() as session:
        run = building.start_run(session, actor=principal.label, kind="build", gateway=None)
        ids = building.build_payouts(session, principal, settings=settings, run=run)
        run.finished_at = now_utc()
        return RunSummary(run_id=run.id, built=ids)


def run_payouts(
    database: Database,
    settings: Settings,
    *,
    principal: Principal = SYSTEM,
    gateway: PayoutGateway | None = None,
    export_dir: str | Path | None = None,
    steps: tuple[str, ...] = ("mature", "build", "settle"),
) -> RunSummary:
    """Run the payout job: mature holds, build payouts, settle approved ones (SPEC §6)."""
    require(principal, Role.FINANCE, Role.ADMIN)
    if steps == ("settle",) and not _due(database)[0]:
        return RunSummary(run_id=0)  # nothing approved: no run to record
    own = gateway is None
    gateway = gateway or make_gateway(settings)
    try:
        with database.session_scope() as session:
            run_id = building.start_run(session, actor=principal.label, kind="run", gateway=gateway.name).id
        summary = RunSummary(run_id=run_id)
        if "mature" in steps:
            summary.matured = mature_holds(database)
        if "build" in steps:
            with database.session_scope() as session:
                run = session.get(PayoutRun, run_id)
                assert run is not None
                run.matured = summary.matured
                summary.built = building.build_payouts(session, principal, settings=settings, run=run)
        if "settle" in steps:
            result = settlement.settle(database, gateway, actor=principal.label, run_id=run_id, export_dir=export_dir)
            summary.paid, summary.failed, summary.unknown = result.paid, result.failed, result.unknown
            summary.export_path = result.export_path
        with database.session_scope() as session:
            run = session.get(PayoutRun, run_id)
            assert run is not None
            run.finished_at = now_utc()
        log.info(
            "payout run %s: matured=%s built=%s paid=%s failed=%s unknown=%s export=%s",
            run_id,
            summary.matured,
            len(summary.built),
            len(summary.paid),
            len(summary.failed),
            len(summary.unknown),
            summary.export_path,
        )
        return summary
    finally:
        if own:
            close_gateway(gateway)


def settle_approved(
    database: Database,
    settings: Settings,
    *,
    gateway: PayoutGateway | None = None,
    export_dir: str | Path | None = None,
) -> RunSummary:
    """Send approved payouts (the frequent scheduler job)."""
    return run_payouts(database, settings, gateway=gateway, export_dir=export_dir, steps=("settle",))


def recover_payouts(
    database: Database,
    settings: Settings,
    *,
    gateway: PayoutGateway | None = None,
    export_dir: str | Path | None = None,
) -> RunSummary:
    """Finish payouts left in processing (a crash between phases, or an unknown outcome)."""
    if not _due(database)[1]:
        return RunSummary(run_id=0)  # nothing left in processing: no run to record
    own = gateway is None
    gateway = gateway or make_gateway(settings)
    try:
        with database.session_scope() as session:
            run_id = building.start_run(session, actor=SYSTEM.label, kind="recover", gateway=gateway.name).id
        result = settlement.recover(database, gateway, actor=SYSTEM.label, run_id=run_id, export_dir=export_dir)
        with database.session_scope() as session:
            run = session.get(PayoutRun, run_id)
            assert run is not None
            run.finished_at = now_utc()
        return RunSummary(
            run_id=run_id,
            paid=result.paid,
            failed=result.failed,
            unknown=result.unknown,
            export_path=result.export_path,
        )
    finally:
        if own:
            close_gateway(gateway)


def accrue_traffic(database: Database, *, now: dt.datetime | None = None, days: int = ACCRUAL_DAYS) -> int:
    """Book CPC/CPM earnings for the last `days` complete UTC days; return the entries booked."""
    now = now or now_utc()
    today = now.date()
    booked = 0
    for back in range(days, 0, -1):
        with database.session_scope() as session:
            booked += accrual.accrue_traffic(session, day=today - dt.timedelta(days=back), at=now)["booked"]
    return booked
