"""Pure postback rules: retry schedule, Retry-After, outcomes, Standard Webhooks signatures."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import random

import pytest

from network.clock import UTC
from network.deliveries import rules, sender

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
S, M, H = 1, 60, 3600


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(1, 5 * S), (2, 5 * M), (3, 30 * M), (4, 2 * H), (5, 5 * H), (6, 10 * H), (7, 14 * H), (8, 20 * H), (9, 24 * H)],
)
def test_backoff_follows_the_schedule_within_the_jitter(attempts: int, seconds: int) -> None:
    waits = [rules.backoff(attempts, random.Random(seed)).total_seconds() for seed in range(50)]
    assert all(seconds * 0.9 <= w <= seconds * 1.1 for w in waits)
    assert len(set(waits)) > 1  # jittered, so queued retries do not all land in one second


def test_ten_attempts_span_about_three_days_then_dead_letter() -> None:
    assert rules.MAX_ATTEMPTS == 10
    total = sum(w.total_seconds() for w in rules.SCHEDULE)
    assert 3 * 24 * H < total < 4 * 24 * H
    last = rules.decide(status_code=500, error=None, headers={}, attempts=10, max_attempts=10, now=NOW)
    assert (last.status, last.next_attempt_at) == ("dead", None)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120),
        (" 7 ", 7),
        ("0", 0),
        ("Tue, 10 Mar 2026 12:10:00 GMT", 600),
        ("Tue, 10 Mar 2026 11:00:00 GMT", 0),  # in the past: no wait
        ("999999999", 24 * H),  # capped
    ],
)
def test_retry_after_reads_seconds_and_dates(header: str, seconds: int) -> None:
    assert rules.retry_after(header, NOW) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("header", [None, "", "soon", "-5", "1.5", "١٢", "Tue, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(header: str | None) -> None:
    assert rules.retry_after(header, NOW) is None


@pytest.mark.parametrize(
    ("status_code", "error", "expected", "disable", "why"),
    [
        (200, None, "delivered", False, None),
        (204, None, "delivered", False, None),
        (299, None, "delivered", False, None),
        (410, None, "failed", True, "410 Gone: the URL is disabled"),
        (500, None, "pending", False, "HTTP 500"),
        (404, None, "pending", False, "HTTP 404"),
        (302, None, "pending", False, "HTTP 302 (redirect not followed)"),
        (None, "timeout: read", "pending", False, "timeout: read"),
        (None, "blocked: host resolves to a non-global address 127.0.0.1 (loopback)", "pending", False, "blocked"),
        (200, "timeout: total deadline exceeded", "pending", False, "timeout"),
    ],
)
def test_outcome_of_an_attempt(
    status_code: int | None, error: str | None, expected: str, disable: bool, why: str | None
) -> None:
    outcome = rules.decide(status_code=status_code, error=error, headers={}, attempts=1, max_attempts=10, now=NOW)
    assert (outcome.status, outcome.disable) == (expected, disable)
    if why is None:
        assert outcome.error is None
    else:
        assert outcome.error is not None and outcome.error.startswith(why)
    if expected == "pending":
        assert outcome.next_attempt_at is not None
        assert dt.timedelta(seconds=4.5) <= outcome.next_attempt_at - NOW <= dt.timedelta(seconds=5.5)


def test_429_waits_as_long_as_the_partner_asks_but_never_less_than_the_schedule() -> None:
    asked = rules.decide(
        status_code=429, error=None, headers={"retry-after": "3600"}, attempts=1, max_attempts=10, now=NOW
    )
    assert asked.next_attempt_at == NOW + dt.timedelta(hours=1)
    short = rules.decide(
        status_code=429, error=None, headers={"retry-after": "1"}, attempts=3, max_attempts=10, now=NOW
    )
    assert short.next_attempt_at is not None and short.next_attempt_at - NOW >= dt.timedelta(minutes=27)


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification.
    signature = rules.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_key_is_the_decoded_secret_in_either_base64_alphabet() -> None:
    raw = bytes(range(250, 256)) + b"\xfb\xff" * 8
    standard = "whsec_" + base64.b64encode(raw).decode()
    urlsafe = "whsec_" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert "+" in standard or "/" in standard
    assert rules.signing_key(standard) == rules.signing_key(urlsafe) == raw
    assert rules.signing_key("plain secret") == b"plain secret"


def test_json_body_is_the_standard_webhooks_shape() -> None:
    macros = {"click_id": "c1", "conversion_id": "7", "payout": "5.00", "status": "approved", "sub1": "a&b"}
    body = rules.json_body(webhook_id="msg_1", old_status="pending", event_at=NOW, macros=macros)
    assert json.loads(body) == {
        "id": "msg_1",
        "type": "conversion.updated",
        "timestamp": "2026-03-10T12:00:00Z",
        "data": {**macros, "previous_status": "pending"},
    }
    created = json.loads(rules.json_body(webhook_id="msg_1", old_status=None, event_at=NOW, macros={}))
    assert created["type"] == "conversion.created"


def test_excerpt_keeps_the_first_kilobyte_as_printable_text() -> None:
    assert sender.excerpt(b"") is None
    text = sender.excerpt(b"ok\x00\x1b[31m" + b"x" * 5000)
    assert text is not None and len(text) == 1024 and "\x00" not in text and "\x1b" not in text


def test_sign_is_hmac_sha256_over_id_timestamp_body() -> None:
    key = b"k" * 24
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(hmac.new(key, b"msg_x.100.{}", hashlib.sha256).digest()).decode()
    assert rules.sign(secret, "msg_x", 100, b"{}") == "v1," + expected
