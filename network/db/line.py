"""The writers' line: one SQLite file's postback batches, across processes, take turns by a file lock.

SQLite's own wait for its write lock polls with growing sleeps (1, 2, 5, 10 ... 100 ms), so under
load one process's writer keeps losing to the other's; a file lock (flock) held around each batch
wakes the next writer as soon as the lock is free. PostgreSQL needs no line.

Kept after measuring it against SQLite's busy timeout alone (`bench/postbacks --db sqlite --seconds 8
--rounds 3`, back to back on the shared 2-core machine, 2026-12-06): new postbacks 3,627/s (0.47x
the bare 302) with the line and 3,092/s (0.41x) without it on a quiet machine; 0.33x and 0.24x
under the other helpers' load. The simpler form costs 15 % or more.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def wait_for_line(path: str) -> int:
    """Open the line's file, wait for its lock and return the descriptor that holds it."""
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
    except BaseException:
        os.close(held)
        raise
    return held


#: How this process waits when the line is taken: `wait(path)` returns a descriptor holding the
#: lock. Chosen once at start (`wait_in_line_with`): under gevent's workers on a thread of the hub.
_wait: Callable[[str], int] | None = None


def wait_in_line_with(wait: Callable[[str], int] | None) -> None:
    """Make a taken line be waited for with `wait(path)` (None: flock's own wait, in the caller)."""
    global _wait
    _wait = wait


class WritersLine:
    """The line of one SQLite file (`<file>-writers`), for one process at a time (re-opened after fork)."""

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-writers"
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            if self._fd is not None:
                # A parent's descriptor, inherited: the lock lives as long as any copy of it is open.
                os.close(self._fd)
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the line while the block runs."""
        fd = held = self._descriptor()
        if _wait is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Waited for elsewhere, with a descriptor of its own (a lock is the open file's, not
                # the thread's: a wait interrupted and then granted is given back by closing it,
                # never by unlocking one that a later batch of this process holds).
                held = _wait(self.path)
        try:
            yield
        finally:
            if held == fd:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                os.close(held)  # and its lock with it
