"""A loopback TCP proxy to a database that a test can take down and bring back: the app sees a
real outage (connections refused, open ones cut) while the database itself keeps running."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url


class Proxy:
    """Forwards 127.0.0.1:<port> to the database of `url`; `down()` refuses and cuts, `up()` forwards again."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self._target = (parsed.host or "127.0.0.1", parsed.port or 5432)
        self._url = parsed
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        """The database URL through the proxy."""
        return self._url.set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def up(self) -> None:
        """Accept and forward connections."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def __enter__(self) -> Proxy:
        self.up()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.down()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.update((client, server))
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
                with self._lock:
                    self._sockets.discard(sock)


class Outage:
    """Takes a test's database away from the apps that reach it through `url`, and brings it back.

    PostgreSQL: through a Proxy. SQLite: through a symlink to the database's directory, removed
    while it is away (the apps' pooled connections are closed, so they must open the file again).
    """

    def __init__(self, database_url: str, tmp_dir: Path) -> None:
        self._proxy: Proxy | None = None
        self._link: Path | None = None
        self._target: Path | None = None
        self._databases: list[Any] = []
        parsed = make_url(database_url)
        if parsed.get_backend_name() == "sqlite":
            assert parsed.database
            self._target = Path(parsed.database).parent
            self._link = tmp_dir / "database-link"
            self._link.symlink_to(self._target, target_is_directory=True)
            self.url = f"sqlite:///{self._link / Path(parsed.database).name}"
        else:
            self._proxy = Proxy(database_url)
            self._proxy.up()
            self.url = self._proxy.url

    def watch(self, database: Any) -> Any:
        """Close `database`'s pooled connections when the database goes away; return it."""
        self._databases.append(database)
        return database

    def down(self) -> None:
        """Take the database away."""
        if self._proxy is not None:
            self._proxy.down()
        elif self._link is not None:
            self._link.unlink()
        for database in self._databases:
            database.engine.dispose()

    def up(self) -> None:
        """Bring the database back."""
        if self._proxy is not None:
            self._proxy.up()
        elif self._link is not None and self._target is not None:
            self._link.symlink_to(self._target, target_is_directory=True)

    def close(self) -> None:
        """Stop forwarding (PostgreSQL); leave the SQLite link as it is."""
        if self._proxy is not None:
            self._proxy.down()
