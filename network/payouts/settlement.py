"""Settlement in atomic phases (RELIABILITY.md): (1) commit the payouts with their idempotency keys
and the entries they settle; (2) call the gateway outside any transaction, with those keys;
(3) commit the outcomes. Recovery finishes whatever a crash or an unknown outcome left between."""

from __future__ import annotations

import csv
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from network import money
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.config import ROOT
from network.db import Database
from network.errors import NotFound
from network.payouts import phases, rules
from network.payouts.gateway import PayoutGateway, TransferRequest, TransferResult
from network.payouts.models import PayoutRun

log = logging.getLogger(__name__)

#: Where the manual gateway's CSV exports go unless told otherwise.
DEFAULT_EXPORT_DIR = ROOT / "instance" / "payout-exports"

#: Called with a phase name ("leased": phase 1 committed; "sent": gateway answered, nothing
#: recorded yet) and the payout ids; tests set it in a subprocess to kill it at that point.
PhaseHook = Callable[[str, list[int]], None]
_phase_hook: PhaseHook | None = None


def set_phase_hook(hook: PhaseHook | None) -> None:
    """Install (or remove) the function called between settlement phases."""
    global _phase_hook
    _phase_hook = hook


def _phase(name: str, ids: list[int]) -> None:
    if _phase_hook is not None:
        _phase_hook(name, ids)


@dataclass
class SettleResult:
    """What one settlement or recovery pass did."""

    paid: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)
    export_path: str | None = None

    def add(self, done: dict[str, list[int]]) -> None:
        """Fold one phase-3 record into the totals."""
        self.paid.extend(done["paid"])
        self.failed.extend(done["failed"])
        self.unknown.extend(done["unknown"])


def transfer_request(order: phases.SendOrder) -> TransferRequest:
    """Return the gateway request of a payout: the same on every retry, as its key requires."""
    assert order.destination is not None
    return TransferRequest(
        amount_minor=order.amount_minor,
        currency=order.currency,
        destination=order.destination,
        idempotency_key=order.idempotency_key,
        transfer_group=order.transfer_group,
        metadata={"payout_id": str(order.payout_id), "partner_id": str(order.partner_id)},
    )


def _send(gateway: PayoutGateway, order: phases.SendOrder) -> TransferResult:
    if not order.destination:
        return TransferResult("failed", None, "the partner has no connected Stripe account")
    return gateway.transfer(transfer_request(order))


def _batch_size(gateway: PayoutGateway) -> int:
    # Manual transfers are instant; Stripe calls are slow, so record them in small batches
    # to keep what a crash leaves for recovery (and the lease) short.
    return 1000 if gateway.name == "manual" else 10


def _load_run(session: Session, run_id: int | None) -> PayoutRun | None:
    return None if run_id is None else session.get(PayoutRun, run_id)


def settle(
    database: Database,
    gateway: PayoutGateway,
    *,
    actor: str,
    run_id: int | None = None,
    export_dir: str | Path | None = None,
    batch_size: int | None = None,
) -> SettleResult:
    """Send every approved payout through the gateway in atomic phases; return what happened."""
    result = SettleResult()
    size = batch_size or _batch_size(gateway)
    while True:
        with database.session_scope() as session:
            orders = phases.lease_approved(
                session, gateway=gateway.name, actor=actor, run_id=run_id, limit=size, now=now_utc()
            )
        if not orders:
            break
        ids = [o.payout_id for o in orders]
        _phase("leased", ids)
        outcomes = [(order, _send(gateway, order)) for order in orders]
        _phase("sent", ids)
        with database.session_scope() as session:
            result.add(
                phases.record_outcomes(session, outcomes, actor=actor, run=_load_run(session, run_id), now=now_utc())
            )
    if gateway.name == "manual" and run_id is not None and result.paid:
        result.export_path = export_csv(database, run_id, export_dir)
    return result


def recover(
    database: Database,
    gateway: PayoutGateway,
    *,
    actor: str,
    run_id: int | None = None,
    export_dir: str | Path | None = None,
    limit: int = 100,
) -> SettleResult:
    """Finish processing payouts whose lease ran out, with the same key (after 24 h: look up first)."""
    result = SettleResult()
    with database.session_scope() as session:
        orders = phases.lease_stuck(session, now=now_utc(), limit=limit)
    for order in orders:
        outcome = _recover_one(database, gateway, order)
        with database.session_scope() as session:
            result.add(
                phases.record_outcomes(
                    session, [(order, outcome)], actor=actor, run=_load_run(session, run_id), now=now_utc()
                )
            )
    if gateway.name == "manual" and run_id is not None and result.paid:
        result.export_path = export_csv(database, run_id, export_dir)
    return result


def _recover_one(database: Database, gateway: PayoutGateway, order: phases.SendOrder) -> TransferResult:
    now = now_utc()
    if not rules.key_expired(order.key_first_used_at, now):
        # Inside the window the same key returns the first transfer, or makes the only one.
        return _send(gateway, order)
    found = gateway.find_transfer(transfer_group=order.transfer_group)
    if found is not None:
        if found.outcome == "paid" and found.reason:
            log.error("payout %s: %s", order.payout_id, found.reason)
        return found
    # Certainly no transfer: open a new key window (committed first), then send with the same key.
    with database.session_scope() as session:
        renewed = phases.renew_key(session, order, now=now_utc())
    if not renewed:
        return TransferResult("unknown", None, "payout changed during recovery")
    return _send(gateway, order)


def export_csv(database: Database, run_id: int, export_dir: str | Path | None = None) -> str:
    """Write the CSV finance pays from (the payouts a run paid through the manual gateway) and record it."""
    directory = Path(export_dir) if export_dir is not None else DEFAULT_EXPORT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"payouts-run-{run_id}.csv"
    with database.session_scope() as session, path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "payout_id",
                "partner_id",
                "partner_name",
                "partner_email",
                "currency",
                "amount",
                "entries",
                "reference",
                "approved_by",
                "paid_at",
            ]
        )
        for row in phases.paid_in_batch(session, run_id):
            writer.writerow(
                [
                    row.id,
                    row.partner_id,
                    _cell(row.name),
                    _cell(row.email or ""),
                    row.currency,
                    money.format_amount(row.amount_minor, row.currency),
                    row.entry_count,
                    row.reference,
                    row.approved_by,
                    row.paid_at.isoformat() if isinstance(row.paid_at, dt.datetime) else "",
                ]
            )
        run = session.get(PayoutRun, run_id)
        if run is not None:
            run.export_path = str(path)
    return str(path)


def export_file(session: Session, principal: Principal, run_id: int) -> Path:
    """Return the CSV file a run exported for finance (finance, admin); 404 when the run has none.

    The path is the one the run stored; no client ever names a file.
    """
    require(principal, Role.FINANCE, Role.ADMIN)
    run = session.get(PayoutRun, run_id)
    path = Path(run.export_path) if run is not None and run.export_path else None
    if path is None or not path.is_file():
        raise NotFound("this payout run has no export")
    return path


def _cell(text: str) -> str:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
