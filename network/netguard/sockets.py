"""Sockets of the safe transport: each proves it reached its checked address and is shut at the total deadline."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from network.netguard.addresses import IPAddress


class Watchdog:
    """Shut registered sockets down once the total deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._timer = threading.Timer(max(seconds, 0.0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def register(self, sock: socket.socket) -> None:
        """Watch a connected socket."""
        # A dup survives ssl wrapping (which detaches the original), and shutdown
        # acts on the shared socket, so it interrupts reads in the other thread.
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            if self.fired:
                _shutdown(dup)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._socks:
                _shutdown(sock)

    def close(self) -> None:
        """Stop the timer and release the watched duplicates."""
        self._timer.cancel()
        self._timer.join()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down, ignoring one already gone."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _GuardMixin:
    """Connection behaviour: watch the socket and prove it reached the checked address."""

    _watchdog: Watchdog
    _expected_ip: IPAddress

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        peer = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
        if peer != self._expected_ip:
            # Unreachable while the pool host is the IP literal; kept as a tripwire.
            sock.close()
            raise OSError(f"connected to {peer}, not the checked {self._expected_ip}")
        self._watchdog.register(sock)
        return sock


class _GuardedHTTPConnection(_GuardMixin, HTTPConnection):
    def __init__(self, *args: Any, watchdog: Watchdog, expected_ip: IPAddress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._expected_ip = expected_ip


class _GuardedHTTPSConnection(_GuardMixin, HTTPSConnection):
    def __init__(self, *args: Any, watchdog: Watchdog, expected_ip: IPAddress, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog
        self._expected_ip = expected_ip


class GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection
