"""Two delivery jobs disabling the same URL at once (two 410s): both commit, one disable row."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import func, select, text

from network.deliveries.models import PostbackDisable
from network.deliveries.targets import disable_url
from tests.factories import make_partner

pytestmark = pytest.mark.postgres_only

URL = "https://partner.example/cb?c={click_id}"


@pytest.fixture(autouse=True)
def _postgres_only(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("SQLite serialises writers (BEGIN IMMEDIATE): the two jobs cannot interleave")


def _wait_until_blocked(committed_db: Any) -> None:
    """Return once some transaction waits on a lock (the second job's INSERT), or after 10 s."""
    with committed_db.engine.connect() as conn:
        for _ in range(200):
            if conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar():
                return
            conn.rollback()
            time.sleep(0.05)


def test_a_second_410_racing_the_first_neither_fails_nor_duplicates(committed_db: Any) -> None:
    with committed_db.session_scope() as session:
        partner_id = make_partner(session).id
    first = committed_db.session()
    disable_url(first, partner_id=partner_id, target="global", template=URL, reason="first 410", delivery_id=None)
    # The first job's row is written, not committed: the second job does not see it, and its
    # INSERT waits for the first job's outcome.
    outcome: dict[str, Any] = {}

    def second_job() -> None:
        try:
            with committed_db.session_scope() as session:
                row = disable_url(
                    session, partner_id=partner_id, target="global", template=URL, reason="second 410", delivery_id=None
                )
                outcome["reason"] = row.reason
        except Exception as exc:  # what the job would have rolled back (its attempt record with it)
            outcome["error"] = exc

    thread = threading.Thread(target=second_job)
    thread.start()
    _wait_until_blocked(committed_db)
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert outcome == {"reason": "first 410"}
    with committed_db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(PostbackDisable)) == 1
