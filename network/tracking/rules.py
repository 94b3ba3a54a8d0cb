"""Pure tracking rules: redirect targets, deep links, macros, targeting. No database, no Flask."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from network.offers.rules import MACROS, normalize_host

#: The first-party cookie that carries the click id for pixel tracking.
CLICK_COOKIE = "network_click"
#: How long the click cookie lives: the longest conversion window an offer may have (3650 days is
#: allowed, but browsers cap cookies near 400 days).
CLICK_COOKIE_MAX_AGE = 400 * 86400
#: Why a click went to the fallback instead of the offer (Click.fallback_reason).
PAUSED = "offer_paused"
COUNTRY = "country_mismatch"
DEVICE = "device_mismatch"
CAP = "click_cap"
#: The offer's brand is over its credit limit (billing).
BRAND_CREDIT = "brand_credit"
#: Device classes of Click.device; offers target the first four.
DEVICES = ("desktop", "mobile", "tablet", "other", "bot")

_MACRO_RE = re.compile(r"\{(" + "|".join(sorted(MACROS)) + r")\}")
_UTM_KEY = re.compile(r"^utm_[A-Za-z0-9_]{1,40}$")
_MAX_UTM = 10
_MAX_DEEP_LINK = 4000
# Characters left as they are when a deep link is re-quoted: RFC 3986 reserved and unreserved, and
# "%" so that existing escapes survive.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


@dataclass(frozen=True, slots=True)
class Target:
    """A destination URL split once into literal text and macro names, ready to fill per click."""

    #: Alternating literal text and macro names: literal, name, literal, ..., literal.
    parts: tuple[str, ...]
    #: Whether the URL has a {click_id} macro (else click_id=... is appended).
    has_click_id: bool
    #: Query parameter names the URL already sets (utm_* from the click never replace them).
    query_keys: frozenset[str]


def compile_target(url: str) -> Target:
    """Return a destination URL prepared for fast filling."""
    parts = tuple(_MACRO_RE.split(url))
    query = urlsplit(url).query
    keys = frozenset(pair.split("=", 1)[0] for pair in query.split("&") if pair)
    return Target(parts=parts, has_click_id="click_id" in parts[1::2], query_keys=keys)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def encode(value: str) -> str:
    """Return `value` percent-encoded for any part of a URL (ids and click ids need no work)."""
    return value if _UNRESERVED.fullmatch(value) else quote(value, safe="")


def fill(target: Target, values: Mapping[str, str | None]) -> str:
    """Return the target with each macro replaced by its value, percent-encoded (never raw)."""
    parts = target.parts
    if len(parts) == 1:
        return parts[0]
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            value = values.get(part)
            out.append(encode(value) if value else "")
        else:
            out.append(part)
    return "".join(out)


def add_params(url: str, params: list[tuple[str, str]]) -> str:
    """Return `url` with `params` URL-encoded into its query, before any fragment."""
    if not params:
        return url
    base, hash_, fragment = url.partition("#")
    if "?" not in base:
        joiner = "?"
    elif base.endswith(("?", "&")):
        joiner = ""
    else:
        joiner = "&"
    query = "&".join(f"{encode(key)}={encode(value)}" for key, value in params)
    return base + joiner + query + hash_ + fragment


def utm_params(pairs: list[tuple[str, str]], exclude: frozenset[str]) -> list[tuple[str, str]]:
    """Return the click's utm_* parameters worth passing through (first of each, bounded)."""
    seen: dict[str, str] = {}
    for key, value in pairs:
        if key.startswith("utm_") and key not in seen and key not in exclude and _UTM_KEY.match(key):
            seen[key] = value
            if len(seen) >= _MAX_UTM:
                break
    return list(seen.items())


def host_of(url: str) -> str | None:
    """Return the normalised host of an http(s) URL, or None."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return normalize_host(host) if host else None


def clean_deep_link(url: str | None, allowed: frozenset[str]) -> str | None:
    """Return a deep link rebuilt from its parts when its host is exactly an allowed one, else None."""
    if not url or len(url) > _MAX_DEEP_LINK or not url.isprintable() or any(c in url for c in " \\"):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or "@" in parts.netloc or not parts.hostname:
        return None
    host = normalize_host(parts.hostname)
    if host is None or host not in allowed:
        return None
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_PATH_SAFE) or "/",
            quote(parts.query, safe=_QUERY_SAFE),
            quote(parts.fragment, safe=_QUERY_SAFE),
        )
    )


def deep_link_problem(url: str, allowed: frozenset[str]) -> str | None:
    """Return why a deep link is refused (for link creation), or None."""
    if clean_deep_link(url, allowed) is None:
        return "must be an http(s) URL whose host is one of the offer's allowed_domains"
    return None


def targeting_miss(
    countries: frozenset[str], devices: frozenset[str], country: str | None, device: str | None
) -> str | None:
    """Return why a click misses an offer's targeting (unknown counts as a miss), or None."""
    if countries and country not in countries:
        return COUNTRY
    if devices and device not in devices:
        return DEVICE
    return None


@dataclass(frozen=True, slots=True)
class UniqueCall:
    """What a click older or newer than its visitor's window does to it (`unique_call`)."""

    #: The click is its visitor's first on the link in a window.
    unique: bool
    #: The window as it becomes: (start, the unique click before it); None when it stays as it is.
    window: tuple[dt.datetime, dt.datetime | None] | None = None
    #: The click at the window's old start is no longer the first of its window: it loses its flag.
    unmark_start: bool = False


def unique_call(at: dt.datetime, start: dt.datetime, previous: dt.datetime | None, window: dt.timedelta) -> UniqueCall:
    """Decide whether a click at `at` is unique, given its visitor's window on the link (start, previous start).

    A window starts at a unique click and lasts `window`; the unique flag goes to the visitor's first
    click by time, whichever process writes it first. A click at or after the window's end opens the
    next window. A click older than the window's start (a slower writer's) is unique when it is not
    inside the window before (`previous`): it then starts the window itself, and the click at the old
    start keeps its flag only if it lies a whole window after it. Best effort beyond: a click written
    more than a window late does not give back the flag to later clicks it no longer covers.
    """
    if at >= start + window:
        return UniqueCall(True, (at, start))
    if at >= start:
        return UniqueCall(False)
    if previous is not None and at < previous + window:
        return UniqueCall(False)
    if start < at + window:
        return UniqueCall(True, (at, previous), unmark_start=True)
    return UniqueCall(True, (start, at))
