"""Sign-in (and reset) attempts counted per e-mail and per client address, with the `limits` library."""

from __future__ import annotations

import hashlib

from limits import parse_many, storage, strategies


class AttemptLimiter:
    """Moving-window counters kept in memory (per process) or in Redis (RATELIMIT_STORAGE_URI=redis://...)."""

    def __init__(self, storage_uri: str, *, per_account: str, per_address: str) -> None:
        self.storage = storage.storage_from_string(storage_uri)
        self.window = strategies.MovingWindowRateLimiter(self.storage)
        self.per_account = parse_many(per_account)
        self.per_address = parse_many(per_address)

    def allow(self, action: str, *, email: str | None, address: str | None) -> bool:
        """Count one attempt; return False when the account or the address is over its limits.

        The account's counter is keyed by the e-mail as typed (normalized), whether or not it has an
        account, so being limited says nothing about which addresses exist.
        """
        hits = []
        if email is not None:
            key = hashlib.sha256(email.strip().lower().encode()).hexdigest()
            hits += [self.window.hit(limit, action, "account", key) for limit in self.per_account]
        if address:
            hits += [self.window.hit(limit, action, "address", address) for limit in self.per_address]
        return all(hits)

    def reset(self) -> None:
        """Forget every counter (tests)."""
        self.storage.reset()
