"""The reads the finance console needs that the payouts API does not answer: totals per currency of a
filtered list, what a payout holds, its history, the payout runs, the audit log, names for ids.

Each one is a plain read (no rule decides anything here: statuses, transitions, balances and thresholds
stay in network/payouts/) and each checks the caller may see all money, as the payouts service does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from network.accounts.models import User
from network.auth import Principal, Role, require
from network.db import where_given
from network.errors import NotFound
from network.partners.models import Partner
from network.payouts.models import AuditLog, LedgerEntry, Payout, PayoutItem, PayoutItemRelease, PayoutRun


def _finance(principal: Principal) -> None:
    require(principal, Role.FINANCE, Role.ADMIN)


@dataclass(frozen=True)
class Total:
    """The payouts of one currency in a list: how many, and their sum in minor units."""

    currency: str
    count: int
    amount_minor: int


def payout_totals(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    partner_id: int | None = None,
    run_id: int | None = None,
) -> list[Total]:
    """Return the count and sum per currency of every payout the filters select (not only one page)."""
    _finance(principal)
    totals: Any = select(Payout.currency, func.count(), func.sum(Payout.amount_minor))
    query = where_given(
        totals,
        (Payout.status, status),
        (Payout.partner_id, partner_id),
        (Payout.run_id, run_id),
    )
    rows = session.execute(query.group_by(Payout.currency).order_by(Payout.currency)).all()
    return [Total(currency, int(count), int(total or 0)) for currency, count, total in rows]


def payout_entries(session: Session, principal: Principal, payout: Payout) -> list[LedgerEntry]:
    """Return the ledger entries a payout holds (or held, when it failed or was canceled) and its own debit."""
    _finance(principal)
    mine = LedgerEntry.partner_id == payout.partner_id
    held = select(PayoutItem.entry_id).where(PayoutItem.payout_id == payout.id)
    released = select(PayoutItemRelease.entry_id).where(PayoutItemRelease.payout_id == payout.id)
    query = select(LedgerEntry).where(
        mine, or_(LedgerEntry.id.in_(held), LedgerEntry.id.in_(released), LedgerEntry.payout_id == payout.id)
    )
    return list(session.scalars(query.order_by(LedgerEntry.id)))


def history(session: Session, principal: Principal, object_type: str, object_id: int) -> list[AuditLog]:
    """Return the audit log of one object (a payout, a partner), oldest first."""
    _finance(principal)
    query = select(AuditLog).where(AuditLog.object_type == object_type, AuditLog.object_id == str(object_id))
    return list(session.scalars(query.order_by(AuditLog.id)))


def audit_entries(
    session: Session,
    principal: Principal,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    limit: int,
    before: int | None = None,
) -> list[AuditLog]:
    """Return a page of the audit log, newest first, before the row `before`."""
    _finance(principal)
    query = where_given(
        select(AuditLog),
        (AuditLog.object_type, object_type),
        (AuditLog.object_id, object_id),
        (AuditLog.actor, actor),
    )
    if action:
        query = query.where(AuditLog.action.startswith(action, autoescape=True))
    if before is not None:
        query = query.where(AuditLog.id < before)
    return list(session.scalars(query.order_by(AuditLog.id.desc()).limit(limit)))


def audit_actions(session: Session, principal: Principal) -> list[str]:
    """Return every action the audit log holds, for its filter."""
    _finance(principal)
    return list(session.scalars(select(AuditLog.action).distinct().order_by(AuditLog.action)))


def list_runs(session: Session, principal: Principal, *, limit: int, before: int | None = None) -> list[PayoutRun]:
    """Return a page of the payout runs, newest first, before the run `before`."""
    _finance(principal)
    query = select(PayoutRun)
    if before is not None:
        query = query.where(PayoutRun.id < before)
    return list(session.scalars(query.order_by(PayoutRun.id.desc()).limit(limit)))


@dataclass(frozen=True)
class RunDetail:
    """A payout run and the payouts it touched: those it built, and those it sent (with their outcome)."""

    run: PayoutRun
    built: list[Payout]
    sent: list[Payout]


def get_run(session: Session, principal: Principal, run_id: int, *, limit: int) -> RunDetail:
    """Return a run with (up to `limit` of) the payouts it built and sent, or 404."""
    _finance(principal)
    run = session.get(PayoutRun, run_id)
    if run is None:
        raise NotFound("payout run not found")
    built = session.scalars(select(Payout).where(Payout.run_id == run_id).order_by(Payout.id).limit(limit))
    sent = session.scalars(select(Payout).where(Payout.batch_id == run_id).order_by(Payout.id).limit(limit))
    return RunDetail(run, list(built), list(sent))


def partner_names(session: Session, principal: Principal, ids: Iterable[int | None]) -> dict[int, str]:
    """Return the names of the partners of `ids`."""
    _finance(principal)
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return dict(session.execute(select(Partner.id, Partner.name).where(Partner.id.in_(wanted))).all())  # type: ignore[arg-type]


def actor_names(session: Session, principal: Principal, labels: Sequence[str]) -> dict[str, str]:
    """Return the e-mail of each signed-in person among audit actors ("finance:user:7" -> its user's e-mail)."""
    _finance(principal)
    ids = {label: int(label.rsplit(":", 1)[1]) for label in set(labels) if _is_user_label(label)}
    if not ids:
        return {}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(set(ids.values())))).all())  # type: ignore[arg-type]
    return {label: emails[user_id] for label, user_id in ids.items() if user_id in emails}


def _is_user_label(label: str) -> bool:
    parts = label.split(":")
    return len(parts) == 3 and parts[1] == "user" and parts[2].isdigit()


def describe(details: Any) -> str:
    """An audit row's details as one line ("amount=12.50, note=late"), empty values left out."""
    if not isinstance(details, dict):
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(details.items()) if v not in (None, ""))
