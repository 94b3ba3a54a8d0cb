"""Builders, fixtures and the RELIABILITY.md invariants for payout tests.

Fixtures here are named with `name=`; a test module imports the `*_fixture` functions it uses
(tests/payouts/conftest.py belongs to the gateway tests)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from network import money
from network.accounts.models import Brand
from network.auth import SYSTEM
from network.clock import UTC
from network.conversions import service as conversions
from network.conversions.models import Conversion
from network.offers.models import Offer
from network.partners.models import Partner
from network.payouts import ledger, settlement
from network.payouts.gateway import StripeGateway
from network.tracking.models import Link
from tests.billing.support import check_billing_invariants
from tests.factories import cpa_event, make_brand, make_offer, make_partner
from tests.rollups.support import check_rollups
from tests.stripe_fake import FakeStripe

#: A Monday noon: payout builds run on Mondays.
NOW = dt.datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
API_KEY = "sk_test_payouts_0123456789abcdef"
WEBHOOK_SECRET = "whsec_payouts_0123456789abcdef"

assert ledger.book_conversion  # the ledger listens to conversion signals from here on


@dataclass
class Shop:
    """A brand with an active offer in one currency."""

    brand: Brand
    offer: Offer


def make_shop(session: Session, *, currency: str = "USD", name: str = "Acme Shop") -> Shop:
    """Make a brand and an active public offer in `currency`."""
    exp = money.exponent(currency)
    flat = "5" + ("." + "0" * exp if exp else "")
    brand = make_brand(session, name=name, currency=currency)
    offer = make_offer(session, brand=brand, currency=currency, events=[cpa_event(payout=flat, revenue=flat)])
    return Shop(brand=brand, offer=offer)


def make_link(session: Session, *, offer: Offer, partner: Partner) -> Link:
    """Return the partner's link for the offer, making it on first use."""
    link = session.query(Link).filter_by(offer_id=offer.id, partner_id=partner.id).first()
    if link is None:
        link = Link(code=secrets.token_urlsafe(9), offer_id=offer.id, partner_id=partner.id)
        session.add(link)
        session.flush()
    return link


def make_commission(
    session: Session,
    *,
    offer: Offer,
    partner: Partner,
    payout: str | int,
    status: str = "approved",
    at: dt.datetime | None = None,
) -> Conversion:
    """Make a conversion worth `payout` (major-unit string or minor int) and, unless pending, approve it
    through the conversions service (which signals the ledger)."""
    at = at or NOW
    minor = money.parse_amount(payout, offer.currency) if isinstance(payout, str) else payout
    link = make_link(session, offer=offer, partner=partner)
    conversion = Conversion(
        offer_id=offer.id,
        event_id=offer.events[0].id,
        brand_id=offer.brand_id,
        partner_id=partner.id,
        link_id=link.id,
        click_id=secrets.token_hex(16),
        clicked_at=at - dt.timedelta(hours=1),
        txn_id=secrets.token_hex(8),
        status="pending",
        flags=[],
        currency=offer.currency,
        amount_minor=None,
        payout_minor=minor,
        revenue_minor=minor,
        created_at=at,
        hold_until=at + dt.timedelta(days=7),
        status_changed_at=at,
    )
    session.add(conversion)
    session.flush()
    if status == "approved":
        assert conversions.transition(session, conversion, "approved", None, actor="test", at=at)
    return conversion


def undo(session: Session, conversion: Conversion, *, status: str = "reversed", at: dt.datetime | None = None) -> None:
    """Reverse (refund) or reject an approved conversion through the conversions service."""
    conversions.change_status(session, SYSTEM, conversion.id, status=status, reason="refund", now=at or NOW)


def partners(session: Session, n: int, *, prefix: str = "Partner") -> list[Partner]:
    """Make `n` active partners."""
    return [make_partner(session, name=f"{prefix} {i}", email=f"p{i}@example.com") for i in range(n)]


def stripe_gateway(fake: FakeStripe, *, timeout: float = 1.0) -> StripeGateway:
    """Return the real StripeGateway pointed at FakeStripe, with a short timeout."""
    return StripeGateway(
        api_key=API_KEY, api_base=fake.base_url, webhook_secret=WEBHOOK_SECRET, timeout_seconds=timeout
    )


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(name="exports")
def exports_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Send the manual gateway's CSV exports to a temporary directory."""
    directory = tmp_path / "exports"
    monkeypatch.setattr(settlement, "DEFAULT_EXPORT_DIR", directory)
    return directory


@pytest.fixture(name="stripe_gw")
def stripe_gw_fixture(fake_stripe: FakeStripe) -> Iterator[StripeGateway]:
    """The real Stripe gateway against FakeStripe (1 s timeout)."""
    gateway = stripe_gateway(fake_stripe)
    yield gateway
    gateway.close()


# ---- the invariants of RELIABILITY.md ------------------------------------------------------------


def _rows(session: Session, sql: str, **params: Any) -> list[Any]:
    return list(session.execute(text(sql), params).all())


def _total(session: Session, sql: str, partner_id: int, currency: str) -> int:
    """Return one SUM of the invariants' own SQL for a partner and currency (:p, :c)."""
    return int(session.execute(text(sql), {"p": partner_id, "c": currency}).scalar_one())


def check_invariants(session: Session, fake: FakeStripe | None = None) -> None:
    """Assert RELIABILITY.md's money invariants on the database (and the fake's transfers), and the rollups'."""
    session.flush()
    check_rollups(session)
    check_billing_invariants(session)
    # Each entry is in at most one live payout (the primary key of payout_items says so too).
    assert _rows(session, "SELECT entry_id FROM payout_items GROUP BY entry_id HAVING COUNT(*) > 1") == []
    # Failed and canceled payouts released their entries (kept as a record); live ones hold theirs.
    assert (
        _rows(
            session,
            "SELECT p.id FROM payouts p JOIN payout_items i ON i.payout_id = p.id WHERE p.status IN ('failed', 'canceled')",
        )
        == []
    )
    assert (
        _rows(
            session,
            "SELECT p.id FROM payouts p JOIN payout_item_releases r ON r.payout_id = p.id"
            " WHERE p.status NOT IN ('failed', 'canceled')",
        )
        == []
    )
    # Payout amount = the sum of its entries (held, or released when it failed), and its entry count.
    held = "SELECT payout_id, entry_id FROM payout_items UNION ALL SELECT payout_id, entry_id FROM payout_item_releases"
    mismatched = _rows(
        session,
        "SELECT p.id, p.amount_minor, p.entry_count, SUM(e.amount_minor), COUNT(*) FROM payouts p"
        f" JOIN ({held}) i ON i.payout_id = p.id JOIN ledger_entries e ON e.id = i.entry_id"
        " GROUP BY p.id, p.amount_minor, p.entry_count"
        " HAVING p.amount_minor <> SUM(e.amount_minor) OR p.entry_count <> COUNT(*)",
    )
    assert mismatched == []
    assert _rows(session, f"SELECT id FROM payouts WHERE id NOT IN (SELECT payout_id FROM ({held}) h)") == []
    # Entries of one payout: one partner, one currency, never a payout debit.
    assert (
        _rows(
            session,
            "SELECT p.id FROM payouts p JOIN payout_items i ON i.payout_id = p.id JOIN ledger_entries e ON e.id = i.entry_id"
            " WHERE e.partner_id <> p.partner_id OR e.currency <> p.currency OR e.kind = 'payout'",
        )
        == []
    )
    # Paid (or later reversed) payouts have exactly one payout entry of minus their amount; others none.
    debits = {
        pid: (n, total)
        for pid, n, total in _rows(
            session,
            "SELECT payout_id, COUNT(*), SUM(amount_minor) FROM ledger_entries WHERE kind = 'payout' GROUP BY payout_id",
        )
    }
    payouts = _rows(
        session,
        "SELECT id, status, amount_minor, currency, approved_at, approved_by, sent_at, paid_at, reference,"
        " idempotency_key, transfer_group, created_at FROM payouts",
    )
    for p in payouts:
        if p.status in ("paid", "reversed"):
            assert debits.get(p.id) == (1, -p.amount_minor), p
            assert p.reference
        else:
            assert p.id not in debits, p
        # Nothing is sent before finance approved it.
        if p.status in ("processing", "paid", "failed", "reversed"):
            assert p.approved_at is not None and p.approved_by, p
            assert p.sent_at is not None and p.sent_at >= p.approved_at, p
            assert p.idempotency_key == f"payout-{p.id}" == p.transfer_group, p
        if p.paid_at is not None:
            assert p.paid_at >= p.sent_at, p
    # Commissions in a payout were approved (history) before the payout was built.
    assert (
        _rows(
            session,
            "SELECT e.id FROM payout_items i JOIN ledger_entries e ON e.id = i.entry_id JOIN payouts p ON p.id = i.payout_id"
            " WHERE e.kind = 'commission' AND (e.created_at > p.created_at OR NOT EXISTS (SELECT 1 FROM conversion_history h"
            " WHERE h.conversion_id = e.conversion_id AND h.new_status = 'approved'))",
        )
        == []
    )
    # The ledger agrees with the conversions: one commission per approved conversion, and a
    # reversal of exactly it for each one undone after approval.
    booked: dict[int, dict[str, int]] = defaultdict(dict)
    for conversion_id, kind, amount in _rows(
        session,
        "SELECT conversion_id, kind, amount_minor FROM ledger_entries WHERE conversion_id IS NOT NULL",
    ):
        assert kind not in booked[conversion_id], (conversion_id, kind)
        booked[conversion_id][kind] = amount
    for c in _rows(session, "SELECT id, status, payout_minor FROM conversions"):
        entries = booked.get(c.id, {})
        if c.status == "approved" and c.payout_minor > 0:
            assert entries == {"commission": c.payout_minor}, c
        elif "commission" in entries:
            assert c.status in ("reversed", "rejected"), c
            assert entries["commission"] == c.payout_minor
            undone = entries.get("reversal", 0) + entries.get("clawback", 0)
            assert undone == -c.payout_minor and len(entries) == 2, (c, entries)
        else:
            assert entries == {}, c
    # Balances: the service's figures are the independent SQL sums, and balance = sum of entries.
    for partner_id, currency, total in _rows(
        session, "SELECT partner_id, currency, SUM(amount_minor) FROM ledger_entries GROUP BY partner_id, currency"
    ):
        available = _total(
            session,
            "SELECT COALESCE(SUM(e.amount_minor), 0) FROM ledger_entries e WHERE e.partner_id = :p"
            " AND e.currency = :c AND e.kind <> 'payout' AND NOT EXISTS (SELECT 1 FROM payout_items i"
            " WHERE i.entry_id = e.id)",
            partner_id,
            currency,
        )
        in_payout = _total(
            session,
            "SELECT COALESCE(SUM(p.amount_minor), 0) FROM payouts p WHERE p.partner_id = :p AND p.currency = :c"
            " AND p.status IN ('pending_approval', 'on_hold', 'approved', 'processing')",
            partner_id,
            currency,
        )
        paid_payouts = _total(
            session,
            "SELECT COALESCE(SUM(amount_minor), 0) FROM payouts WHERE partner_id = :p AND currency = :c"
            " AND status IN ('paid', 'reversed')",
            partner_id,
            currency,
        )
        returned = _total(
            session,
            "SELECT COALESCE(SUM(amount_minor), 0) FROM ledger_entries WHERE partner_id = :p AND currency = :c"
            " AND kind = 'payout_reversal'",
            partner_id,
            currency,
        )
        line = next(r for r in ledger.balance_rows(session, partner_id) if r["currency"] == currency)
        assert line["balance"] == total == available + in_payout, (partner_id, currency, line)
        assert (line["available"], line["in_payout"], line["paid"]) == (
            available,
            in_payout,
            paid_payouts - returned,
        ), (partner_id, currency, line)
    if fake is not None:
        check_transfers(session, fake)


def check_transfers(session: Session, fake: FakeStripe) -> None:
    """Assert one transfer per payout at most, and that a paid payout is exactly its transfer."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for transfer in fake.transfers:
        by_group[transfer["transfer_group"]].append(transfer)
    assert all(len(found) == 1 for found in by_group.values()), by_group
    payouts = {
        f"payout-{p.id}": p
        for p in _rows(session, "SELECT id, status, amount_minor, currency, reference, destination FROM payouts")
    }
    for group, (transfer,) in by_group.items():
        payout = payouts[group]  # no transfer without its payout
        assert transfer["amount"] == payout.amount_minor
        assert transfer["currency"] == payout.currency.lower()
        assert transfer["destination"] == payout.destination
        assert transfer["metadata"]["payout_id"] == str(payout.id)
        assert payout.status in ("paid", "reversed", "processing"), payout
        if payout.status != "processing":
            assert payout.reference == transfer["id"]
    for group, payout in payouts.items():
        if payout.status in ("paid", "reversed") and payout.reference and payout.reference.startswith("tr_"):
            assert group in by_group, payout
        if payout.status in ("failed", "canceled", "pending_approval", "on_hold", "approved"):
            assert group not in by_group, payout
