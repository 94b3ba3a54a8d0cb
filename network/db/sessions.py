"""Sessions and transactions: one `Database` per app, with the sessions its callers need.

Only the request (network/web.py), the job (network/jobruns.py, `session_scope`) and the CLI end a
transaction; services flush.

The replica (DATABASE_REPLICA_URL, a PostgreSQL hot standby) is read through `replica_session`
and `replica_reading` only; its rule is `Database.replica_session`'s docstring.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from network.db.engines import READ_ONLY, make_engine, read_only
from network.db.line import WritersLine


class Database:
    """An engine and its session factories; `replica_url`: a hot standby that reports may read (see `replica_session`)."""

    #: The replica's engine and its sessions (None: no replica).
    _replica_engine: Engine | None = None
    _replica: sessionmaker[Session] | None = None

    def __init__(self, url: str, *, replica_url: str | None = None, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._writer: sessionmaker[Session] | None = None
        self._reader: sessionmaker[Session] | None = None
        if replica_url:
            self._replica_engine = make_engine(replica_url, **engine_kwargs)
            self._replica = sessionmaker(read_only(self._replica_engine), expire_on_commit=False)
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

    @property
    def has_replica(self) -> bool:
        """Return whether `replica_session` reads a replica (DATABASE_REPLICA_URL) rather than the primary."""
        return self._replica is not None

    def replica_session(self) -> Session:
        """Return a read-only session on the replica, or on the primary when there is none.

        The rule: a replica is a little behind the primary (its lag: seconds, more while its replay
        is held up), so only an answer that may be a little old without harm reads it. Those are
        the reports (GET /api/v1/reports) and the lists a person looks at: GET /api/v1/conversions,
        /api/v1/postback-log, /api/v1/links (docs/ARCHITECTURE.md, "Reads from the replica", names
        the modules; tests/replica/test_rule.py keeps the list and the code the same). What a money
        or access decision depends on never reads it: API keys and sign-in, balances, the ledger,
        payouts and their jobs, caps, offers' access and every write path read the primary,
        because an answer there that is a little old pays twice or lets a revoked key in.

        On the replica the transaction is READ ONLY (a standby refuses a write anyway; this says so
        at BEGIN). Without a replica it is `read_session`, on the primary, as before there was one.
        """
        return self._replica() if self._replica is not None else self.read_session()

    @contextmanager
    def replica_reading(self) -> Iterator[Session]:
        """Yield a `replica_session` (its rule applies) whose transaction is rolled back and closed at the end."""
        session = self.replica_session()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def _engines(self) -> list[Engine]:
        """Return the engines of pools of this Database's own (the primary's, the writer's, the replica's)."""
        engines = [self.engine]
        if self._writer is not None and self._writer.kw["bind"] is not self.engine:
            engines.append(self._writer.kw["bind"])
        if self._replica_engine is not None:
            engines.append(self._replica_engine)
        return engines

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
        for engine in self._engines():
            engine.dispose(close=False)

    def dispose(self) -> None:
        """Close all pooled connections."""
        for engine in self._engines():
            engine.dispose()


#: Every Database of this process, to renew their pools after a fork (`renew_pools`).
_databases: weakref.WeakSet[Database] = weakref.WeakSet()


def renew_pools() -> None:
    """Give every Database of this process pools of its own (after a fork; again once gevent has patched)."""
    for database in list(_databases):
        database.renew_pools()


os.register_at_fork(after_in_child=renew_pools)
