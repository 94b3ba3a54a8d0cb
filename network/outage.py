"""A database outage: which errors mean one, and its log, one line per interval rather than per request.

While the database is unreachable (stopped, restarting, the network gone) every request that
needs it fails the same way. The answer is a 503 with Retry-After (network/errors.py), so that
brands' systems retry their postbacks; the log says it once per interval with a count of the
requests refused meanwhile, never a traceback per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Seconds a client is told to wait before it retries (the Retry-After header).
RETRY_AFTER = 5
#: At most one log line about an outage per this many seconds, per process.
LOG_INTERVAL = 10.0


def _kinds() -> tuple[type[Exception], ...]:
    import psycopg
    from sqlalchemy import exc

    # OperationalError: the connection failed or broke, the server is shutting down, a lock or
    # statement timed out (SQLite: the file is locked). InterfaceError: the driver's connection is
    # unusable. DisconnectionError: the pool found the connection gone. TimeoutError: no pooled
    # connection came free in time.
    return (
        exc.OperationalError,
        exc.InterfaceError,
        exc.DisconnectionError,
        exc.TimeoutError,
        psycopg.OperationalError,
    )


#: The exception classes that mean "the database is unavailable", not "the request was wrong".
UNAVAILABLE: tuple[type[Exception], ...] = _kinds()


def is_unavailable(error: BaseException) -> bool:
    """Return whether `error` means the database could not be reached or answered (a transient fault)."""
    return isinstance(error, UNAVAILABLE)


class OutageLog:
    """Logs an outage once per `interval` seconds, with the count of the failures noted meanwhile."""

    def __init__(self, *, interval: float = LOG_INTERVAL, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._last: float | None = None
        self._since_last = 0

    def note(self, error: BaseException, what: str = "requests refused") -> bool:
        """Count one failure; log the outage (at ERROR) when the interval has passed. Return whether it logged."""
        now = self._monotonic()
        with self._lock:
            self._since_last += 1
            if self._last is not None and now - self._last < self._interval:
                return False
            count, self._since_last = self._since_last, 0
            previous, self._last = self._last, now
        # The error's class and first line only: the statement's parameters may hold secrets.
        first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[:1]
        span = f"in the last {now - previous:.0f} s" if previous is not None else "so far"
        log.error(
            "database unavailable (%s: %s): %d %s %s",
            type(error).__name__,
            first_line[0][:200] if first_line else "",
            count,
            what,
            span,
        )
        return True


#: The process's outage log for requests (the error handler notes each refused request).
REQUESTS = OutageLog()


_BACKGROUND: dict[str, OutageLog] = {}
_BACKGROUND_LOCK = threading.Lock()


def log_failure(logger: logging.Logger, message: str, error: BaseException, *, what: str) -> None:
    """Log a background writer's or refresher's failure: a database outage once per interval for
    each `what` ("click flushes failed"), without a traceback; anything else with its traceback.

    Call it from an `except Exception as error:` block instead of `logger.exception(message)`.
    """
    if not is_unavailable(error):
        logger.error(message, exc_info=error)
        return
    with _BACKGROUND_LOCK:
        outage_log = _BACKGROUND.setdefault(what, OutageLog())
    outage_log.note(error, what)
