"""wsgi's app with one more path, /_probe, that tells how the worker waits for the database (tests/test_preload.py)."""

from __future__ import annotations

import json
from typing import Any

from psycopg import waiting

from network import green
from network.db import engines, line
from wsgi import app as network_app


def app(environ: dict[str, Any], start_response: Any) -> Any:
    """Answer /_probe with the worker's waits; everything else as wsgi's app."""
    if environ.get("PATH_INFO") != "/_probe":
        return network_app(environ, start_response)
    body = json.dumps(
        {
            "enabled": green.enabled(),
            "psycopg": waiting.wait is green.wait,
            "write lock": engines._take_write_lock is green.begin_immediate,
            "line": line._wait is green.wait_in_line,
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
