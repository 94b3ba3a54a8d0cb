"""Pure decisions of partner postbacks: retry schedule, Retry-After, outcome, Standard Webhooks signing."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

#: Waits after each failed attempt (about: now, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
#: 24 h): ten attempts over about three days, then the delivery is dead-lettered.
SCHEDULE: tuple[dt.timedelta, ...] = (
    dt.timedelta(seconds=5),
    dt.timedelta(minutes=5),
    dt.timedelta(minutes=30),
    dt.timedelta(hours=2),
    dt.timedelta(hours=5),
    dt.timedelta(hours=10),
    dt.timedelta(hours=14),
    dt.timedelta(hours=20),
    dt.timedelta(hours=24),
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
#: Each wait is stretched or shrunk by up to this fraction, so a partner's recovery is not met
#: by every queued delivery in the same second.
JITTER = 0.1
#: A Retry-After longer than this is capped: the schedule's last wait.
MAX_RETRY_AFTER = SCHEDULE[-1]
#: Macros whose values a delivery carries (SPEC §5, plus txn_id when the brand shares it).
MACRO_NAMES: tuple[str, ...] = (
    "click_id", "conversion_id", "offer_id", "event", "payout", "currency", "status",
    "sub1", "sub2", "sub3", "sub4", "sub5", "txn_id",
)  # fmt: skip
SUB_NAMES: tuple[str, ...] = ("sub1", "sub2", "sub3", "sub4", "sub5")


def backoff(attempts: int, rng: random.Random | None = None) -> dt.timedelta:
    """Return the wait after the `attempts`-th failed attempt (1-based), with jitter."""
    base = SCHEDULE[min(max(attempts, 1), len(SCHEDULE)) - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return dt.timedelta(seconds=base.total_seconds() * factor)


def retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """Return the wait a Retry-After header asks for (seconds or an HTTP date), capped; None if unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        wait = dt.timedelta(seconds=int(value[:9]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        wait = when - now
    return min(max(wait, dt.timedelta(0)), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class Outcome:
    """What an attempt's result means for its delivery."""

    #: pending (retry at next_attempt_at), delivered, failed or dead.
    status: str
    next_attempt_at: dt.datetime | None
    #: Whether the URL must be disabled (it answered 410 Gone).
    disable: bool
    #: Why the attempt did not succeed, for the log; None on success.
    error: str | None


def decide(
    *,
    status_code: int | None,
    error: str | None,
    headers: Mapping[str, str],
    attempts: int,
    max_attempts: int,
    now: dt.datetime,
    rng: random.Random | None = None,
) -> Outcome:
    """Return what to do after attempt number `attempts`: done, retry later, disable, or dead-letter."""
    if error is None and status_code is not None and 200 <= status_code < 300:
        return Outcome("delivered", None, False, None)
    if error is None and status_code == 410:
        return Outcome("failed", None, True, "410 Gone: the URL is disabled")
    if error is None and status_code is not None:
        why = f"HTTP {status_code}"
        if 300 <= status_code < 400:
            why += " (redirect not followed)"
    else:
        why = error or "no response"
    if attempts >= max_attempts:
        return Outcome("dead", None, False, why)
    wait = backoff(attempts, rng)
    if status_code == 429:
        asked = retry_after(headers.get("retry-after"), now)
        if asked is not None:
            # Honour the partner's wait, but never come back sooner than the schedule says.
            wait = max(wait, asked)
    return Outcome("pending", now + wait, False, why)


def signing_key(secret: str) -> bytes:
    """Return the HMAC key of a Standard Webhooks secret: the base64-decoded part after "whsec_".

    Both base64 alphabets are accepted (older secrets were URL-safe); a secret without the
    prefix, or not base64, is used as its UTF-8 bytes.
    """
    raw = secret.removeprefix("whsec_")
    if raw == secret:
        return secret.encode()
    text = raw.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return raw.encode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Return the webhook-signature header: "v1," + base64 HMAC-SHA256 of "id.timestamp.body"."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(signing_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def event_type(old_status: str | None) -> str:
    """Return the webhook type: conversion.created for a new conversion, else conversion.updated."""
    return "conversion.created" if old_status is None else "conversion.updated"


def json_body(*, webhook_id: str, old_status: str | None, event_at: dt.datetime, macros: Mapping[str, str]) -> bytes:
    """Return the JSON body of a POST delivery (Standard Webhooks shape: type, timestamp, data)."""
    data = {name: macros.get(name, "") for name in MACRO_NAMES if name in macros}
    data["previous_status"] = old_status or ""
    payload = {
        "id": webhook_id,
        "type": event_type(old_status),
        "timestamp": event_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
