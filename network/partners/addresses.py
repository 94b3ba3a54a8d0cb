"""The addresses a partner signs in and calls the API from, kept for the fraud window (self-referral).

A conversion whose click came from one of its partner's own addresses is flagged `self_referral`
(network/conversions/rules.py; the click's row is read with its partner's matching address, in the
query that reads it anyway, network/conversions/attribution.py). An address is written at most once
per partner and address per `TOUCH_EVERY` per process (an `AddressBook` remembers what it wrote,
by network.cache's one expiry rule), never once per API request; `purge` (a daily job) deletes what
was last seen longer ago than the fraud window (CLICK_IP_RETENTION_DAYS, as clicks' raw IPs).

Addresses, not devices: a click's only device key is its visitor key, a keyed hash of its address and
user agent (tracking.traffic.VisitorHasher), so a click whose device matches the partner's has its
address too, and matching the address finds it.

API: `AddressBook`, `TOUCH_EVERY`, `touch`, `purge`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete
from sqlalchemy.orm import Session

from network.cache import Cache
from network.db import upsert
from network.netguard.addresses import check_address
from network.partners.models import PartnerAddress

#: How often one process writes a partner's address again while it keeps being used (seconds).
TOUCH_EVERY = 600.0


def _address(value: str | None) -> str | None:
    """Return a request's address as clicks keep it; None for one that is no global IP address.

    A loopback, private or otherwise non-global address (a proxy the app was not told about, a test
    machine) says nothing of who the partner is, and would make every click through it its own.
    """
    if not value:
        return None
    try:
        return str(check_address(value))
    except ValueError:  # not an address, or not a global one (UnsafeURL)
        return None


def touch(session: Session, partner_id: int, address: str | None, now: dt.datetime) -> bool:
    """Record that a partner used an address now (insert, or move last_seen); False for no usable address."""
    found = _address(address)
    if found is None:
        return False
    row = {"partner_id": partner_id, "address": found, "last_seen": now}
    session.execute(
        upsert(
            session,
            PartnerAddress,
            [row],
            keys=["partner_id", "address"],
            update=lambda new: {"last_seen": new["last_seen"]},
        )
    )
    return True


class AddressBook:
    """One process's memory of the partners' addresses it wrote lately, so each is written once per `every` seconds."""

    def __init__(self, *, every: float = TOUCH_EVERY, size: int = 50_000) -> None:
        #: Seconds between two writes of one partner's address (0: every time, for tests).
        self.every = every
        self._written: Cache[tuple[int, str], bool] = Cache(max_age=every, miss_age=0.0, size=size)

    def seen(self, session: Session, partner_id: int, address: str | None, now: dt.datetime) -> None:
        """Record a partner's address in the session, unless this process did less than `every` seconds ago."""
        if not address:
            return
        self._written.get((partner_id, address), lambda _previous: touch(session, partner_id, address, now) or None)


def purge(session: Session, *, now: dt.datetime, retention_days: int) -> int:
    """Delete the addresses not seen for `retention_days`; return how many."""
    cutoff = now - dt.timedelta(days=retention_days)
    result = session.execute(delete(PartnerAddress).where(PartnerAddress.last_seen < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]
