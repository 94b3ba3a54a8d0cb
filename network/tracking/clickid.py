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
from dataclasses import dataclass

from network.clock import UTC

VERSION = 1
_BODY = struct.Struct(">BI6s12s")
_MAC_LEN = 12
LENGTH = 47


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
        body = _BODY.pack(VERSION, link_id, millis.to_bytes(6, "big"), os.urandom(12))
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    def verify(self, click_id: str | None) -> ClickRef | None:
        """Return what a click id says if it was issued with this secret, else None."""
        if not click_id or len(click_id) != LENGTH or not click_id.isascii():
            return None
        try:
            raw = base64.urlsafe_b64decode(click_id + "=")
        except ValueError:
            return None
        if len(raw) != _BODY.size + _MAC_LEN:
            return None
        body, mac = raw[: _BODY.size], raw[_BODY.size :]
        if not hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]):
            return None
        version, link_id, millis, _nonce = _BODY.unpack(body)
        if version != VERSION:
            return None
        clicked_at = dt.datetime.fromtimestamp(int.from_bytes(millis, "big") / 1000, tz=UTC)
        return ClickRef(link_id=link_id, clicked_at=clicked_at)
