"""Sessions and transactions: one `Database` per app, with the sessions its callers need.

Only the request (network/web.py), the job (network/jobruns.py, `session_scope`) and the CLI end a
transaction; services flush.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from network.db.engines import READ_ONLY, make_engine
from network.db.line import WritersLine


class Database:
    """An engine and its session factories."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._writer: sessionmaker[Session] | None = None
        self._reader: sessionmaker[Session] | None = None
        path = self.engine.url.database if self.dialect == "sqlite" else None
        #: SQLite files only: an in-memory database is one connection, PostgreSQL needs no line.
        self._line = WritersLine(path) if path and path != ":memory:" else None
        _databases.add(self)

    @property
    def dialect(self) -> str:
        """Return the dialect name: 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @property
    def one_writer(self) -> bool:
        """Return whether a writing transaction holds the database's only write lock from BEGIN on (SQLite).

        There a request that may wait (for a client's body, a partner's server) reads on
        `read_session` and writes late; PostgreSQL locks rows, not the database.
        """
        return self.dialect == "sqlite"

    def session(self) -> Session:
        """Return a new session."""
        return self.sessionmaker()

    def writers_queue(self) -> Any:
        """Return a context that waits in line with the other processes' postback batches (network/db/line.py)."""
        return self._line.turn() if self._line is not None else nullcontext()

    def read_session(self) -> Session:
        """Return a new session for reading only (on SQLite its transaction does not take the write lock)."""
        if self._reader is None:
            self._reader = sessionmaker(self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False)
        return self._reader()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Yield a read-only session whose transaction is rolled back and closed at the end."""
        session = self.read_session()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def writer_session(self) -> Session:
        """Return a new session whose connection is not pinged when taken from the pool (a round trip).

        For the postback batches (network/conversions/batch.py), which record again on regular
        sessions when theirs fails: a connection lost meanwhile fails one batch and is replaced.
        """
        if self._writer is None:
            if self.dialect == "postgresql":
                # LIFO: one batch at a time mostly reuses one connection, whose prepared statements stay warm.
                engine = make_engine(self.url, pool_pre_ping=False, pool_use_lifo=True)
                self._writer = sessionmaker(engine, expire_on_commit=False)
            else:
                self._writer = self.sessionmaker
        return self._writer()

    @contextmanager
    def session_scope(self, *, writer: bool = False) -> Iterator[Session]:
        """Yield a session that commits once at the end, or rolls back on error (jobs, CLI).

        `writer`: on a connection not pinged when taken (see `writer_session`).
        """
        session = self.writer_session() if writer else self.sessionmaker()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def renew_pools(self) -> None:
        """Give this process pools of its own, leaving the connections a parent opened to the parent.

        SQLAlchemy's way after a fork (`dispose(close=False)`): a connection shared by two processes
        mixes their conversations, and the new pools' locks are made by this process (gevent's
        once it has patched).
        """
        if isinstance(self.engine.pool, StaticPool):
            return  # an in-memory SQLite database: its one connection is the process's memory, copied by fork
        self.engine.dispose(close=False)
        if self._writer is not None and self._writer.kw["bind"] is not self.engine:
            self._writer.kw["bind"].dispose(close=False)

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
        if self._writer is not None and self._writer.kw["bind"] is not self.engine:
            self._writer.kw["bind"].dispose()


#: Every Database of this process, to renew their pools after a fork (`renew_pools`).
_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def renew_pools() -> None:
    """Give every Database of this process pools of its own (after a fork; again once gevent has patched)."""
    for database in list(_databases):
        database.renew_pools()


os.register_at_fork(after_in_child=renew_pools)
