"""What the database said a moment ago, kept per process: the one expiry rule of the hot paths' caches.

The click path's snapshot of links and offers (network/tracking/snapshot.py) and the link codes the
database did not know are kept here; so can the postback path's link contexts. How long an entry
lives is decided here and nowhere else:

- An entry is served for `max_age` seconds after it was read; an answer of None (no such row) for
  `miss_age` seconds. With a lifetime of 0 every `get` reads (tests change data between requests).
- Past its lifetime, the next `get` reads it again. Callers that come while that read is under way
  keep the entry it replaces rather than all reading at once, for at most `stale_for` seconds past
  its lifetime (None: for as long as the read takes). A change in the database therefore shows
  within `max_age + stale_for` (with `stale_for=None`, within `max_age` plus one read).
- A lifetime is fixed when the entry is read: a new `max_age` applies from the next read.
- At most `size` entries: the one read longest ago is dropped first.

A read that fails raises to its caller and leaves the entry as it was; a caller that would rather
keep serving the old value puts it back with `put` (its lifetime starts again).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Cache(Generic[K, V]):
    """Values read from the database by key, each served until its lifetime ends (see the module)."""

    def __init__(
        self,
        *,
        max_age: float,
        miss_age: float | None = None,
        stale_for: float | None = None,
        size: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        #: Seconds a value is served after it was read.
        self.max_age = max_age
        #: Seconds an answer of None is served (default: max_age).
        self.miss_age = max_age if miss_age is None else miss_age
        #: Seconds past its lifetime an entry is still served while another caller reads it again.
        self.stale_for = stale_for
        self.size = size
        self._monotonic = monotonic
        self._lock = threading.Lock()
        #: key -> (when read, when its lifetime ends, value), the one read longest ago first.
        self._entries: OrderedDict[K, tuple[float, float, V | None]] = OrderedDict()
        #: Keys being read again now, with how many callers read each.
        self._reading: Counter[K] = Counter()

    def get(self, key: K, read: Callable[[V | None], V | None]) -> V | None:
        """Return the entry for `key`, first calling `read(previous value or None)` when it has expired."""
        entry = self._entries.get(key)
        if entry is not None:
            now = self._monotonic()
            if now < entry[1]:
                return entry[2]
            with self._lock:
                if self._reading[key] and (self.stale_for is None or now < entry[1] + self.stale_for):
                    return entry[2]
                self._reading[key] += 1
        else:
            with self._lock:
                self._reading[key] += 1
        try:
            value = read(None if entry is None else entry[2])
        finally:
            with self._lock:
                self._reading[key] -= 1
                if not self._reading[key]:
                    del self._reading[key]
        self.put(key, value)
        return value

    def has_fresh(self, key: K) -> bool:
        """Return whether `key` has an entry whose lifetime lasts (a None answer included)."""
        entry = self._entries.get(key)
        return entry is not None and self._monotonic() < entry[1]

    def peek(self, key: K) -> V | None:
        """Return the entry for `key` however old, or None (no read)."""
        entry = self._entries.get(key)
        return None if entry is None else entry[2]

    def age(self, key: K) -> float:
        """Return the seconds since `key` was read (infinity when it never was)."""
        entry = self._entries.get(key)
        return float("inf") if entry is None else self._monotonic() - entry[0]

    def put(self, key: K, value: V | None) -> None:
        """Keep `value` for `key` as read now."""
        now = self._monotonic()
        with self._lock:
            self._entries.pop(key, None)
            self._entries[key] = (now, now + (self.miss_age if value is None else self.max_age), value)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
            # Entries read long ago are dropped as new ones come, so memory follows the traffic.
            while len(self._entries) > 1:
                _at, until, _value = next(iter(self._entries.values()))
                if now < until + (self.stale_for or 0.0):
                    break
                self._entries.popitem(last=False)

    def expire(self, key: K) -> None:
        """Make the next `get` of `key` read it again (the old value may still be served meanwhile)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries[key] = (entry[0], float("-inf"), entry[2])

    def __len__(self) -> int:
        return len(self._entries)
