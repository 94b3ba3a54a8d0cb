"""The delivery job past an attempt the database refuses (RELIABILITY.md 27): the delivery's outcome
is recorded, the attempt kept as a dead letter, the other deliveries go on."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from network.deliveries import sender
from tests.deadletters.support import letters
from tests.deliveries.conftest import attempts, deliver, deliveries, make_conversion, make_scene


def test_an_attempt_the_database_refuses_is_kept_and_its_delivery_recorded(
    committed_db, settings, endpoint, dialect, monkeypatch
):
    with committed_db.session_scope() as s:
        scene = make_scene(s, postback_url=endpoint.url("/cb?c={click_id}"))
        for _ in range(20):
            make_conversion(s, scene)
    # A value put straight into one attempt's row (the real excerpt is made printable first).
    refused = "ok\x00" if dialect == "postgresql" else "ok\ud800"
    lock = threading.Lock()
    given: list[str] = []
    real = sender.excerpt

    def excerpt(body: bytes) -> Any:
        with lock:
            if not given:
                given.append(refused)
                return refused
        return real(body)

    monkeypatch.setattr(sender, "excerpt", excerpt)

    assert deliver(committed_db, settings) == 20

    with committed_db.session_scope() as s:
        rows = deliveries(s)
        assert Counter((row.status, row.last_status_code) for row in rows) == {("delivered", 200): 20}
        logged = {row.id: attempts(s, row.id) for row in rows}
    assert sorted(len(a) for a in logged.values()) == [0] + [1] * 19
    [(reason, row)] = letters(committed_db, "delivery_log")
    assert reason.startswith(("DataError: PostgreSQL text fields cannot contain NUL", "UnicodeEncodeError"))
    [unlogged] = [delivery_id for delivery_id, a in logged.items() if not a]
    assert row["delivery_id"] == unlogged and row["response_excerpt"] == refused and row["status_code"] == 200
