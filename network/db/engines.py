"""Engines: SQLite's pragmas and BEGIN modes, PostgreSQL's URL and pings.

How a writing transaction waits for SQLite's write lock is SQLite's own busy wait in the driver's
call, unless the serving layer chose another way once at start (`wait_for_write_lock_with`:
gevent's workers, network/green.py), because that wait stops every greenlet of a gevent worker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from network.db import driver

#: How long SQLite waits for its write lock before a write fails with "database is locked".
BUSY_TIMEOUT_MS = 10_000

#: The execution option of Database.read_session's connections.
READ_ONLY = "network_read_only"


def _begin_immediate(driver_connection: Any) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock in SQLite's own busy wait (BUSY_TIMEOUT_MS)."""
    driver_connection.execute("BEGIN IMMEDIATE")


#: How this process's writing transactions begin on SQLite (see `wait_for_write_lock_with`).
_take_write_lock: Callable[[Any], None] = _begin_immediate


def wait_for_write_lock_with(begin: Callable[[Any], None] | None) -> None:
    """Make SQLite's writing transactions begin with `begin(driver connection)` (None: SQLite's own wait).

    Called once, when a server's worker starts (network/green.py under gevent's workers).
    """
    global _take_write_lock
    _take_write_lock = begin or _begin_immediate


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _sqlite_autobegin_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock up front, so a read-then-write never fails to upgrade; a
    # read-only session (Database.read_session) leaves it to the writers.
    # On the driver: SQLAlchemy's execution path would cost every transaction half as much again.
    driver_connection = conn.connection.driver_connection
    if conn.get_execution_options().get(READ_ONLY):
        driver_connection.execute("BEGIN")
    else:
        _take_write_lock(driver_connection)


def read_only(engine: Engine) -> Engine:
    """Return `engine` whose transactions are READ ONLY on PostgreSQL (BEGIN READ ONLY: no extra round trip)."""
    if engine.dialect.name != "postgresql":
        return engine.execution_options(**{READ_ONLY: True})
    return engine.execution_options(**{READ_ONLY: True}, postgresql_readonly=True)


def make_engine(url: str, *, pool_size: int | None = None, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    `pool_size`: connections kept open (SQLAlchemy's default, 5, when None; an in-memory SQLite
    database has one).
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Statement errors never carry their parameters: they may hold postback tokens or keys.
    kwargs.setdefault("hide_parameters", True)
    in_memory = url in {"sqlite://", "sqlite:///:memory:"}
    if pool_size is not None and not in_memory:  # an in-memory database is one connection (StaticPool)
        kwargs.setdefault("pool_size", pool_size)
    if url.startswith("sqlite"):
        if in_memory:
            kwargs.setdefault("poolclass", StaticPool)
        kwargs.setdefault("connect_args", {"check_same_thread": False})
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; emit it ourselves so that
        # SAVEPOINTs and the IMMEDIATE lock taken for writes behave as documented.
        event.listen(engine, "connect", _sqlite_autobegin_off)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # No JIT: a report's UNION of rollups and raw rows costs enough for PostgreSQL to compile it,
    # and compiling took 1.5 of its 1.7 s at 1 M clicks (bench/reports); short queries gain nothing.
    kwargs.setdefault("connect_args", {"options": "-c jit=off"})
    engine = create_engine(url, **kwargs)
    driver.listen(engine)
    return engine
