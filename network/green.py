"""What gevent's workers need done differently, enabled once when the worker starts (`enable`).

- SQLite's write lock and the writers' line are waited for without stopping the worker's other
  greenlets (`begin_immediate`, `wait_in_line`).
- psycopg's waits ask the kernel first and go through gevent's hub only when a wait is real:

psycopg runs every operation as a generator that yields when it would block, and a wait function
that resumes it once the socket is ready. Under gevent's monkey-patching psycopg picks its
`wait_poll`, which calls gevent's `select.poll` at every yield: a poll object with an io watcher
made, started and stopped, and a switch to the hub and back. In pipeline mode (network.db.pipelined)
the generator yields after every statement queued, to send it, and the socket is nearly always
writable then; and a round trip's answer has often arrived by the time it is asked for. On the
2-core machine a PostgreSQL postback batch of 8 made 15 such waits, of which 2 found the socket not
ready, and they cost its worker about a third more CPU than psycopg's C wait (bench/batches).

`wait` here does what psycopg's asyncio wait does (wait_async): a zero-timeout poll with the real
`poll()` first, and the hub only when the socket is not ready, and then only until it is; a
greenlet whose socket is always ready still gives the others a turn every MAX_BUSY_TIME.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

import psycopg
from psycopg import waiting

from network.db import engines, line, sessions

#: As psycopg's asyncio wait: how long a greenlet may keep the hub from the others when it never blocks.
MAX_BUSY_TIME = 0.005

_READ, _WRITE = int(waiting.Wait.R), int(waiting.Wait.W)
_EVENTS = {
    int(waiting.Wait.R): select.POLLIN,
    int(waiting.Wait.W): select.POLLOUT,
    int(waiting.Wait.RW): select.POLLIN | select.POLLOUT,
}
_BAD = select.POLLERR | select.POLLHUP | select.POLLNVAL

_last_yield = monotonic()


class _Interval(Exception):
    """A wait's interval passed with the socket not ready (raised by gevent's wait, caught by `wait`)."""


_INTERVAL = _Interval()


def patched() -> bool:
    """Return whether gevent has monkey-patched `select` in this process (psycopg's own test)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("select"))


#: Whether `enable` has run in this process (a gevent worker).
_enabled = False


def enabled() -> bool:
    """Return whether this process waits as a gevent worker (chosen once at start, network/serving.py)."""
    return _enabled


def enable() -> None:
    """Make this process's waits for the database let the other greenlets run; once, in a patched worker.

    psycopg's connections call `psycopg.waiting.wait` for every wait, the function psycopg chose at
    its import: psycopg's C wait when imported before gevent patched (gunicorn's --preload), which
    would stop the hub. SQLite's waits are chosen in network/db/engines.py and network/db/line.py.
    """
    global _enabled
    waiting.wait = wait
    engines.wait_for_write_lock_with(begin_immediate)
    line.wait_in_line_with(wait_in_line)
    # Pools made before gevent patched (forked from gunicorn's master under --preload) wait on real
    # locks, which stop the hub: made again now, they wait as greenlets.
    sessions.renew_pools()
    _enabled = True


def install() -> bool:
    """Enable the greenlets' waits when gevent has patched this process (once); return whether it has."""
    if patched() and not _enabled:
        enable()
    return _enabled


#: The first and the longest of the sleeps between tries for SQLite's write lock (seconds).
BUSY_SLEEPS = (0.0005, 0.02)


def begin_immediate(driver: Any) -> None:
    """BEGIN IMMEDIATE on a SQLite driver connection, waiting for the write lock as a greenlet.

    SQLite waits for its write lock inside the driver's call (the busy timeout), which under gevent
    stops every greenlet of the process: when the lock's holder is one of them, waiting for an
    answer of its own (a partner's server, Stripe), it could never finish, and the wait would end
    only at the timeout, in "database is locked". So here BEGIN IMMEDIATE is tried without SQLite's
    wait, and between tries the greenlet sleeps through gevent's hub, up to the same timeout.
    Python's sqlite3 offers no busy handler to do this in SQLite's own wait.
    """
    deadline = time.monotonic() + engines.BUSY_TIMEOUT_MS / 1000
    pause, longest = BUSY_SLEEPS
    # Tried without SQLite's own wait (3.5 us more per transaction on the 2-core machine).
    driver.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                driver.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as error:
                # Any kind of busy (the extended codes too: a WAL being recovered), as SQLite's own wait.
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            sleep(pause)
            pause = min(pause * 2, longest)
    finally:
        driver.execute(f"PRAGMA busy_timeout={engines.BUSY_TIMEOUT_MS}")


def wait_in_line(path: str) -> int:
    """Wait for the writers' line (network/db/line.py) on a thread of gevent's pool; return the holding descriptor."""
    return int(off_hub(functools.partial(line.wait_for_line, path), undo=os.close))


def give_way() -> None:
    """Let every greenlet that can run now have its turn first (gevent.sleep(0))."""
    (_hub or _bind()).sleep(0)


def sleep(seconds: float) -> None:
    """Let the other greenlets run for `seconds` (gevent.sleep)."""
    (_hub or _bind()).sleep(seconds)


def off_hub(call: Callable[[], Any], *, undo: Callable[[Any], None] | None = None) -> Any:
    """Run a blocking `call` on a thread of gevent's pool and return its value, the hub free meanwhile.

    For a call that would otherwise stop every greenlet of the process (a file lock's wait). A
    greenlet interrupted while it waits (killed, a timeout) leaves the call running on its thread:
    `undo` is then called with the call's value once it has succeeded after all (to release what
    it took).
    """
    done = (_hub or _bind()).threadpool().spawn(call)
    try:
        return done.get()
    except BaseException:
        if undo is not None:
            done.rawlink(lambda result: undo(result.value) if result.successful() else None)
        raise


def blocking(call: Callable[[], Any]) -> Any:
    """Run a blocking call (argon2's hashing): off the hub in a gevent worker, so its other requests go on."""
    return off_hub(call) if _enabled else call()


def gather() -> None:
    """Let the requests a gevent worker has received reach the queue first (a batch's leader); elsewhere nothing."""
    if _enabled:
        give_way()


def _ready(events: list[tuple[int, int]]) -> int:
    ready = 0
    for _fd, event in events:
        if event & select.POLLIN:
            ready |= _READ
        if event & select.POLLOUT:
            ready |= _WRITE
        if not ready and event & _BAD:
            raise psycopg.OperationalError("connection socket closed")
    return ready


@dataclass(frozen=True)
class _Hub:
    #: The real poll(): asks the kernel and returns at once, never through the hub.
    poll: Callable[[], Any]
    sleep: Callable[[float], None]
    #: gevent's waits for a socket, by psycopg's Wait.
    waits: dict[int, Callable[..., Any]]
    #: The hub's pool of real threads (gevent.get_hub().threadpool).
    threadpool: Callable[[], Any]


_hub: _Hub | None = None


def _bind() -> _Hub:
    """Look gevent's parts up once (gevent is imported only by a process that runs wait)."""
    global _hub
    import gevent
    from gevent import socket as green_socket
    from gevent.monkey import get_original

    _hub = _Hub(
        poll=get_original("select", "poll"),
        sleep=gevent.sleep,
        waits={
            _READ: green_socket.wait_read,
            _WRITE: green_socket.wait_write,
            _READ | _WRITE: green_socket.wait_readwrite,
        },
        threadpool=lambda: gevent.get_hub().threadpool,
    )
    return _hub


def wait(gen: Any, fileno: int, interval: float = 0.1, timeout: float | None = None) -> Any:
    """Run psycopg's generator `gen` on socket `fileno` to its end and return its value (psycopg's `wait`).

    `interval`: the longest single wait, after which the generator is resumed with nothing ready
    (as psycopg's waits do); `timeout`: raise psycopg's `_WaitTimeout` once it has passed.
    """
    global _last_yield
    if interval is None:
        raise ValueError("indefinite wait not supported")
    hub = _hub or _bind()
    deadline = None if timeout is None else monotonic() + timeout
    try:
        state = next(gen)
        poller = hub.poll()
        poller.register(fileno, _EVENTS[state])
        while True:
            ready = _ready(poller.poll(0))
            if ready:
                if monotonic() - _last_yield >= MAX_BUSY_TIME:
                    hub.sleep(0)
                    _last_yield = monotonic()
            else:
                limit = interval if deadline is None else max(0.0, min(interval, deadline - monotonic()))
                # Only the interval's own expiry is caught: a TimeoutError thrown into the greenlet
                # (a caller's gevent.Timeout) is the caller's.
                with contextlib.suppress(_Interval):  # the interval passed: resumed with nothing ready
                    hub.waits[state](fileno, timeout=limit, timeout_exc=_INTERVAL)
                _last_yield = monotonic()
                ready = _ready(poller.poll(0))
            state = gen.send(ready)
            poller.modify(fileno, _EVENTS[state])
            if deadline is not None and monotonic() >= deadline:
                raise psycopg.errors._WaitTimeout("wait timeout expired")
    except StopIteration as stop:
        return stop.value
