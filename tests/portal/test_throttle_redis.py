"""Sign-in limits shared through Redis: every process counts against the same limits."""

from __future__ import annotations

import socket
import uuid

import pytest

from network.app import create_app
from tests.conftest import make_settings
from tests.portal.conftest import sign_in

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _clients(database_url, db, storage_uri: str, address: str) -> list:  # type: ignore[no-untyped-def]
    """Two apps standing for two worker processes, each with a limiter of its own on `storage_uri`."""
    settings = make_settings(
        database_url,
        ratelimit_storage_uri=storage_uri,
        signin_limit_account="3 per 15 minutes",
        signin_limit_address="100 per 15 minutes",
    )
    clients = [create_app(settings, database=db).test_client() for _ in range(2)]
    for client in clients:
        client.environ_base["REMOTE_ADDR"] = address
    return clients


@pytest.mark.skipif(not _redis_answers(), reason="no Redis on 127.0.0.1:6379 (CI has one)")
def test_two_processes_limiters_share_their_counts_through_redis(database_url, db):
    # With memory storage each would allow 3 on its own. Keys of their own (a new e-mail and a new
    # address each run): nothing else in Redis is touched.
    first, second = _clients(database_url, db, REDIS_URL, f"2001:db8::{uuid.uuid4().hex[:4]}")
    email = f"{uuid.uuid4().hex}@example.test"
    answers = [sign_in(client, email, "wrong").status_code for client in (first, second, first, second)]
    assert answers == [401, 401, 401, 429]
    # Another account from the same address is still allowed (per account), until the address's limit.
    assert sign_in(second, f"other-{email}", "wrong").status_code == 401


def test_memory_storage_counts_per_process(database_url, db):
    first, second = _clients(database_url, db, "memory://", "192.0.2.1")
    answers = [sign_in(client, "a@example.test", "wrong").status_code for client in (first, second, first, second)]
    assert answers == [401, 401, 401, 401]
