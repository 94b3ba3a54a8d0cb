"""What a click's request says about its visitor: device class, bot, country, keyed visitor hash."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
from functools import lru_cache
from typing import Any

import user_agents

log = logging.getLogger(__name__)

# Parsing a user agent costs most of a millisecond; real traffic repeats a few thousand of them.
_UA_LIMIT = 512
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@lru_cache(maxsize=8192)
def _classify(agent: str) -> tuple[str, bool]:
    if not agent.strip():
        # Browsers always send one; an empty user agent is a script.
        return "other", True
    parsed = user_agents.parse(agent)
    if parsed.is_bot:
        return "bot", True
    if parsed.is_tablet:
        return "tablet", False
    if parsed.is_mobile:
        return "mobile", False
    if parsed.is_pc:
        return "desktop", False
    return "other", False


def classify_agent(agent: str | None) -> tuple[str, bool]:
    """Return (device class, is bot) for a user agent string."""
    return _classify((agent or "")[:_UA_LIMIT])


class VisitorHasher:
    """Keyed hash of IP and user agent: identifies a visitor without keeping either."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"network visitor v1", hashlib.sha256).digest()
        # Floods and returning visitors repeat the same pair; hashing again would be wasted work.
        self._recent: dict[tuple[str | None, str | None], str] = {}

    def __call__(self, ip: str | None, agent: str | None) -> str:
        """Return the visitor hash (32 hex characters)."""
        key = (ip, agent)
        cached = self._recent.get(key)
        if cached is None:
            cached = self._recent[key] = self._hash(ip, agent)
            if len(self._recent) > 50_000:
                self._recent.clear()
        return cached

    def _hash(self, ip: str | None, agent: str | None) -> str:
        message = f"{ip or ''}\n{(agent or '')[:_UA_LIMIT]}".encode("utf-8", "replace")
        return hmac.digest(self._key, message, "sha256").hex()[:32]


class CountryResolver:
    """Finds a click's country in a trusted proxy header, else in a MaxMind database, else None."""

    def __init__(self, header: str | None, geoip_db: str | None) -> None:
        #: The WSGI environ key of the trusted header (e.g. HTTP_CF_IPCOUNTRY).
        self.environ_key = "HTTP_" + header.upper().replace("-", "_") if header else None
        self._geoip_db = geoip_db
        self._reader: Any = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        """Return whether any source of country is configured."""
        return bool(self.environ_key or self._geoip_db)

    def _geoip(self) -> Any:
        if self._reader is None and self._geoip_db:
            with self._lock:
                if self._reader is None:
                    import geoip2.database

                    self._reader = geoip2.database.Reader(self._geoip_db)
        return self._reader

    def resolve(self, header_value: str | None, ip: str | None) -> str | None:
        """Return an ISO 3166 alpha-2 code, or None when unknown."""
        if self.environ_key:
            value = (header_value or "").strip().upper()
            # Cloudflare sends XX (unknown) and T1 (Tor): neither is a country.
            if _COUNTRY.match(value) and value != "XX":
                return value
        reader = self._geoip()
        if reader is None or not ip:
            return None
        try:
            code = reader.country(ip).country.iso_code
        except Exception:  # noqa: BLE001 - unknown address, private range, bad database record
            return None
        return code.upper() if code else None
