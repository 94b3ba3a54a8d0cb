"""Code run in child processes by the concurrency tests (importable under the spawn start method)."""

from __future__ import annotations

from typing import Any

from network.db import Database
from network.deliveries import jobs
from tests.conftest import make_settings
from tests.deliveries.conftest import LOCAL, fast


def delivery_scheduler(database_url: str, start: Any, results: Any) -> None:
    """Act as one scheduler process: wait for the others, run the delivery job once, report its sends."""
    settings = make_settings(database_url, postback_allow_http=True, postback_allowed_networks=LOCAL)
    database = Database(database_url)
    try:
        start.wait(30)
        results.put(jobs.deliver_due(database, settings, limit=1000, transport=fast()))
    finally:
        database.dispose()
