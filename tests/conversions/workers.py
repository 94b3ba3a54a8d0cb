"""Code that runs in other processes for the concurrency tests (importable by multiprocessing's spawn)."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from network import clock
from network.app import create_app
from network.config import Settings


def fire(database_url: str, secret: str, now: str, paths: list[str], threads: int, barrier: Any, results: Any) -> None:
    """Send GET `paths` through a real app of this process, `threads` at a time, once every process is ready."""
    clock.freeze(dt.datetime.fromisoformat(now))
    app = create_app(Settings(database_url=database_url, secret_key=secret, testing=True))

    def send(path: str) -> tuple[int, Any]:
        response = app.test_client().get(path)
        return response.status_code, response.get_json()

    try:
        barrier.wait(timeout=60)
        with ThreadPoolExecutor(threads) as pool:
            results.put(list(pool.map(send, paths)))
    finally:
        app.extensions["network.db"].dispose()
