"""Sign-in limits shared through Redis: every process counts against the same limits."""

from __future__ import annotations

import socket
import uuid

import pytest

from network.portal.throttle import AttemptLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379 (CI has one)")


def test_two_processes_limiters_share_their_counts_through_redis():
    # Two limiters stand for two worker processes: with memory storage each would allow 3 on its own.
    first, second = (
        AttemptLimiter(REDIS_URL, per_account="3 per 15 minutes", per_address="100 per 15 minutes") for _ in range(2)
    )
    action = f"sign-in-test-{uuid.uuid4().hex}"  # keys of their own: nothing else in Redis is touched
    email = f"{uuid.uuid4().hex}@example.test"
    answers = [limiter.allow(action, email=email, address="192.0.2.1") for limiter in (first, second, first, second)]
    assert answers == [True, True, True, False]
    # Another account from the same address is still allowed (per account), until the address's limit.
    assert second.allow(action, email=f"other-{email}", address="192.0.2.1")


def test_memory_storage_counts_per_process():
    first, second = (
        AttemptLimiter("memory://", per_account="3 per 15 minutes", per_address="100 per 15 minutes") for _ in range(2)
    )
    answers = [
        limiter.allow("sign-in", email="a@example.test", address=None) for limiter in (first, second, first, second)
    ]
    assert answers == [True, True, True, True]
