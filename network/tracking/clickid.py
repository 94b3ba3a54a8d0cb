"""Self-describing click ids: link and click time under an HMAC of the network's secret.

A conversion is attributed, and its window checked, from the id alone, so click rows may be
written in batches off the request path. Layout (base64url, no padding, 47 characters):
version (1 byte) | link id (4) | click time, ms since epoch (6) | random (12) | HMAC-SHA256 (12).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import struct
import threading
from dataclasses import dataclass

from network.clock import UTC

VERSION = 1
_BODY = struct.Struct(">BI6s12s")
_MAC_LEN = 12
LENGTH = 47


class _RandomPool:
    """Hands out bytes of os.urandom read in blocks, each byte once."""

    # Where system calls are slow (sandboxes), one per click costs more than the rest of the id.

    def __init__(self, block: int = 12 * 1024) -> None:
        self._block = block
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Drop buffered bytes (a forked child must never reuse its parent's)."""
        self._buffer = b""
        self._position = 0

    def take(self, size: int) -> bytes:
        """Return `size` fresh random bytes."""
        with self._lock:
            if self._position + size > len(self._buffer):
                self._buffer = os.urandom(max(self._block, size))
                self._position = 0
            start = self._position
            self._position = start + size
            return self._buffer[start : start + size]


_RANDOM = _RandomPool()
os.register_at_fork(after_in_child=_RANDOM.reset)


@dataclass(frozen=True, slots=True)
class ClickRef:
    """What a valid click id says: which link, and when."""

    link_id: int
    clicked_at: dt.datetime


class ClickIdCodec:
    """Issues and verifies click ids with a key derived from the network's secret."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"network click id v1", hashlib.sha256).digest()

    def issue(self, link_id: int, clicked_at: dt.datetime) -> str:
        """Return a new unguessable click id for a click on `link_id` at `clicked_at`."""
        millis = int(clicked_at.timestamp() * 1000)
        body = _BODY.pack(VERSION, link_id, millis.to_bytes(6, "big"), _RANDOM.take(12))
        mac = hmac.digest(self._key, body, "sha256")[:_MAC_LEN]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def verify(self, click_id: str | None) -> ClickRef | None:
        """Return what a click id says if it was issued with this secret, else None."""
        if not click_id or len(click_id) != LENGTH or not click_id.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(click_id + "=")
        except ValueError:
            return None
        # 47 characters carry 282 bits for 280: only the canonical spelling is the id (else one
        # click would have 4 spellings, each deduped and looked up as another click).
        if len(raw) != _BODY.size + _MAC_LEN or base64.urlsafe_b64encode(raw).decode().rstrip("=") != click_id:
            return None
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, hmac.digest(self._key, body, "sha256")[:_MAC_LEN]):
            return None
        version, link_id, millis, _nonce = _BODY.unpack(body)
        if version != VERSION:
            return None
        clicked_at = dt.datetime.fromtimestamp(int.from_bytes(millis, "big") / 1000, tz=UTC)
        return ClickRef(link_id=link_id, clicked_at=clicked_at)
