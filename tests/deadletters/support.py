"""Helpers for dead-letter tests: reading the table, and a TCP proxy that can cut the database away."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url

from network.db import Database
from network.deadletters.models import DeadLetter


def letters(database: Database, source: str) -> list[tuple[str, dict[str, Any]]]:
    """Return (reason, payload) of a writer's dead letters, oldest first."""
    with database.session() as session:
        rows = session.scalars(select(DeadLetter).where(DeadLetter.source == source).order_by(DeadLetter.id)).all()
        return [(row.reason, json.loads(row.payload)) for row in rows]


class Proxy:
    """A TCP proxy on loopback to a database server; `cut()` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, database_url: str) -> str:
        """Return `database_url` pointed at the proxy."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self._target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones (the database is gone)."""
        self._up.clear()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()

    def restore(self) -> None:
        """Accept connections again (the database is back)."""
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()
