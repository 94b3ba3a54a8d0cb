"""Stripe's webhook events, verified by the API first: account.updated and transfer.reversed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from network import money
from network.billing import webhooks as billing_webhooks
from network.clock import now_utc
from network.payouts import ledger
from network.payouts.models import EntryKind, Payout, PayoutStatus
from network.payouts.tables import entries, insert_ignoring_duplicates, partners, payouts, stripe_events


def handle_stripe_event(session: Session, event: dict[str, Any], *, now: dt.datetime | None = None) -> str:
    """Apply a verified Stripe event once: a replayed event id changes nothing. Return what it did."""
    now = now or now_utc()
    stored = insert_ignoring_duplicates(
        session,
        stripe_events,
        [{"event_id": event["id"], "type": event["type"][:64], "received_at": now, "outcome": None}],
        "event_id",
    )
    if not stored:
        return "duplicate"
    obj = event["data"]["object"]
    if event["type"] == "account.updated":
        outcome = _account_updated(session, obj)
    elif event["type"] == "transfer.reversed":
        outcome = _transfer_reversed(session, obj, now)
    elif event["type"] in billing_webhooks.TYPES:
        outcome = billing_webhooks.handle(session, event["type"], obj, now)
    else:
        outcome = "ignored"
    session.execute(update(stripe_events).where(stripe_events.c.event_id == event["id"]).values(outcome=outcome[:255]))
    return outcome


def _account_updated(session: Session, account: dict[str, Any]) -> str:
    account_id = account.get("id")
    if not isinstance(account_id, str):
        return "ignored: no account id"
    capabilities = account.get("capabilities") or {}
    transfers = capabilities.get("transfers") if isinstance(capabilities, dict) else None
    enabled = bool(account.get("payouts_enabled")) and transfers in (None, "active")
    changed = session.execute(
        update(partners).where(partners.c.stripe_account_id == account_id).values(stripe_payouts_enabled=enabled)
    ).rowcount  # type: ignore[attr-defined]
    return (
        f"account {account_id}: payouts {'enabled' if enabled else 'disabled'}"
        if changed
        else "ignored: unknown account"
    )


def _transfer_reversed(session: Session, transfer: dict[str, Any], now: dt.datetime) -> str:
    transfer_id = transfer.get("id")
    payout = session.scalars(select(Payout).where(Payout.reference == transfer_id)).one_or_none()
    if payout is None:
        return "ignored: unknown transfer"
    reversed_minor = min(int(transfer.get("amount_reversed") or 0), payout.amount_minor)
    booked = session.scalar(
        select(func.coalesce(func.sum(entries.c.amount_minor), 0)).where(
            entries.c.payout_id == payout.id, entries.c.kind == EntryKind.PAYOUT_REVERSAL.value
        )
    )
    session.execute(
        update(payouts)
        .where(payouts.c.id == payout.id, payouts.c.status == PayoutStatus.PAID.value)
        .values(status=PayoutStatus.REVERSED.value, reversed_at=now)
    )
    delta = reversed_minor - int(booked or 0)
    if delta > 0:
        # A new entry gives the money back to the balance; the paid entries stay as they were.
        ledger.add_entry(
            session,
            partner_id=payout.partner_id,
            currency=payout.currency,
            kind=EntryKind.PAYOUT_REVERSAL,
            amount_minor=delta,
            key=f"payout-reversal-{payout.id}-{reversed_minor}",
            at=now,
            payout_id=payout.id,
            memo=f"transfer {transfer_id} reversed",
        )
        ledger.audit(
            session,
            actor="stripe",
            action="payout.reversed",
            object_type="payout",
            object_id=payout.id,
            details={"transfer": transfer_id, "amount": money.format_amount(delta, payout.currency)},
            at=now,
        )
    session.refresh(payout)
    return f"payout {payout.id} reversed ({delta} back to the balance)"
