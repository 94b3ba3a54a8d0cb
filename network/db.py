"""Declarative base, UTC datetime type, engine and sessions."""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from sqlalchemy import DateTime, Engine, MetaData, Select, Table, bindparam, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from network import green
from network.clock import UTC

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every database (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Return how a value is bound; on SQLite one isoformat call writes SQLAlchemy's stored string.

        SQLite's DATETIME stores "YYYY-MM-DD HH:MM:SS.ffffff", which SQLAlchemy's processor makes by
        %-formatting seven fields: a postback batch binds about seven datetimes per conversion, in
        the writers' line. `isoformat(" ", "microseconds")` of the naive UTC value is the same string.
        """
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def process(value: dt.datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given for a UTC column")
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

        return process


class Base(DeclarativeBase):
    """Base of every model; constraint names follow one convention so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING)


#: How long SQLite waits for its write lock before a write fails with "database is locked".
BUSY_TIMEOUT_MS = 10_000
#: Under gevent, the first and the longest of the sleeps between tries for the write lock (seconds).
_GREEN_BUSY_SLEEPS = (0.0005, 0.02)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


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
    # Under gevent's workers (the README's PostgreSQL setup), psycopg's waits for the server go
    # through the hub only when the socket is not ready (network/green.py).
    green.install()
    engine = create_engine(url, **kwargs)
    event.listen(engine, "after_cursor_execute", _answer_now)
    return engine


def _sqlite_autobegin_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock up front, so a read-then-write never fails to upgrade; a
    # read-only session (Database.read_session) leaves it to the writers.
    # On the driver: SQLAlchemy's execution path would cost every transaction half as much again.
    driver = conn.connection.driver_connection
    if conn.get_execution_options().get(_READ_ONLY):
        driver.execute("BEGIN")
    elif green.patched():  # asked at each begin: an app made before gevent patched (--preload) too
        _begin_immediate_green(driver)
    else:
        driver.execute("BEGIN IMMEDIATE")


def _begin_immediate_green(driver: Any) -> None:
    """BEGIN IMMEDIATE, waiting for the write lock as a greenlet (gevent's workers).

    SQLite waits for its write lock inside the driver's call (the busy timeout), which under gevent
    stops every greenlet of the process: when the lock's holder is one of them, waiting for an
    answer of its own (a partner's server, Stripe), it could never finish, and the wait would end
    only at the timeout, in "database is locked". So here BEGIN IMMEDIATE is tried without SQLite's
    wait, and between tries the greenlet sleeps through gevent's hub, up to the same timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause, longest = _GREEN_BUSY_SLEEPS
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
            green.sleep(pause)
            pause = min(pause * 2, longest)
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


#: The execution option of Database.read_session's connections.
_READ_ONLY = "network_read_only"


#: Page sizes of every list: the default, and the bound past which a request is refused
#: (RELIABILITY.md case 18).
DEFAULT_PAGE = 100
MAX_PAGE = 500

_Query = TypeVar("_Query", bound=Select[Any])


def paged(query: _Query, id_column: Any, *, limit: int = DEFAULT_PAGE, after: int | None = None) -> _Query:
    """Return `query` ordered by id, limited to one page after the cursor `after` (keyset paging)."""
    if after is not None:
        query = query.where(id_column > after)
    return query.order_by(id_column).limit(limit)


def where_given(query: _Query, *pairs: tuple[Any, Any]) -> _Query:
    """Return `query` narrowed by `column == value` for each pair whose value was given (not None)."""
    for column, value in pairs:
        if value is not None:
            query = query.where(column == value)
    return query


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self._writer: sessionmaker[Session] | None = None
        self._reader: sessionmaker[Session] | None = None
        self._queue_fd: int | None = None
        self._queue_pid = 0

    @property
    def dialect(self) -> str:
        """Return the dialect name: 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def session(self) -> Session:
        """Return a new session."""
        return self.sessionmaker()

    @contextmanager
    def writers_queue(self) -> Iterator[None]:
        """Wait in line with the other processes' postback batches before writing (SQLite files).

        SQLite's own wait for its write lock polls with growing sleeps (1, 2, 5, 10 ... 100 ms), so
        under load one process's writer keeps losing to the other's; a file lock held around each
        batch wakes the next writer as soon as the lock is free. PostgreSQL needs no line.
        """
        path = self.engine.url.database if self.dialect == "sqlite" else None
        if not path or path == ":memory:":
            yield
            return
        if self._queue_fd is None or self._queue_pid != os.getpid():
            if self._queue_fd is not None:
                # A parent's descriptor, inherited: the lock lives as long as any copy of it is open.
                os.close(self._queue_fd)
            self._queue_fd, self._queue_pid = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        fd = held = self._queue_fd
        if not green.patched():
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # Under gevent the wait would stop every greenlet of the worker: it waits on a
                # thread, with a descriptor of its own (a lock is the open file's, not the thread's:
                # a wait interrupted and then granted is given back by closing it, never by
                # unlocking one that a later batch of this process holds).
                held = green.off_hub(functools.partial(_wait_for_line, f"{path}-writers"), undo=os.close)
        try:
            yield
        finally:
            if held == fd:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:
                os.close(held)  # and its lock with it

    def read_session(self) -> Session:
        """Return a new session for reading only (on SQLite its transaction does not take the write lock)."""
        if self._reader is None:
            self._reader = sessionmaker(self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False)
        return self._reader()

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

    def dispose(self) -> None:
        """Close all pooled connections."""
        self.engine.dispose()
        if self._writer is not None and self._writer.kw["bind"] is not self.engine:
            self._writer.kw["bind"].dispose()


def _wait_for_line(path: str) -> int:
    """Open the writers' line's file, wait for its lock and return the descriptor that holds it."""
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
    except BaseException:
        os.close(held)
        raise
    return held


def insert_for(dialect: str) -> Any:
    """Return the INSERT construct of a dialect ("postgresql" or "sqlite"): their ON CONFLICT clauses differ."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


# ---- driver statements for the hottest writes ----------------------------------------------------


_Converters = list[tuple[str, Callable[[Any], Any] | None]]


class Raw:
    """A statement run on the database driver's own cursor, compiled once per dialect, its parameters
    converted by SQLAlchemy's own type processors.

    For the few statements of the postback path that run for every conversion
    (network/conversions/batch.py): there SQLAlchemy's work per execution costs more than the
    database's. Everything else goes through SQLAlchemy.

    On PostgreSQL the statement is compiled with `$1` placeholders and run on psycopg's RawCursor,
    which sends it as it is: psycopg's own cursor parses every statement for `%(name)s` placeholders
    (and caches none longer than 4 KB, as a batch's INSERT of many rows is).

    `prepared=False`: a query PostgreSQL plans afresh each time it runs, never a prepared statement
    (psycopg prepares one run five times on a connection), whose plan the server would keep until
    the table is next analyzed: for a query whose best index depends on how big the table has grown.
    """

    def __init__(
        self, build: Callable[[str], Any], keys: Sequence[str] | None = None, *, prepared: bool = True
    ) -> None:
        #: Makes the statement for a dialect name (ON CONFLICT clauses are dialect constructs).
        self._build = build
        self._keys = list(keys) if keys is not None else None
        self._prepared = prepared
        self._forms: dict[str, tuple[str, _Converters]] = {}

    def _form(self, dialect: Dialect) -> tuple[str, _Converters]:
        form = self._forms.get(dialect.name)
        if form is None:
            target = _dollar_dialect(dialect) if dialect.name == "postgresql" else dialect
            compiled = self._build(dialect.name).compile(dialect=target, column_keys=self._keys)
            assert compiled.positional, "the drivers' placeholders are positional: ? and $1"
            converters = [
                (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup or ()
            ]
            form = self._forms[dialect.name] = (compiled.string, converters)
        return form

    @staticmethod
    def _driver(session: Session) -> tuple[Any, Dialect]:
        """Return the session's driver connection and its dialect."""
        # In a pipeline's transaction the session's connection is fixed: asking the session for it
        # again at each statement (a batch runs nine) cost more than some of the statements did.
        found = session.info.get(_PIPELINE_DRIVER)
        if found is not None and found[0] is session.get_transaction():
            return found[1], found[2]
        connection = session.connection()
        return connection.connection.driver_connection, connection.dialect

    @staticmethod
    def _cursor(session: Session) -> tuple[Any, Dialect]:
        driver, dialect = Raw._driver(session)
        return Raw._open(driver, dialect), dialect

    @staticmethod
    def _open(driver: Any, dialect: Dialect) -> Any:
        """Return a cursor on the driver connection: psycopg's RawCursor on PostgreSQL."""
        return psycopg.RawCursor(driver) if dialect.name == "postgresql" else driver.cursor()

    def _prepare(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> tuple[Any, str, list[list[Any]]]:
        cursor, dialect = self._cursor(session)
        sql, converters = self._form(dialect)
        params = [[c(row[n]) if c else row[n] for n, c in converters] for row in rows]
        return cursor, sql, params

    def many(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> Callable[[], int]:
        """Run the statement once per row, in the session's transaction.

        Return how to read the number of rows the runs changed in all: in a pipeline (`pipelined`),
        known once it has ended, without a round trip of its own.
        """
        if not rows:
            return lambda: 0
        cursor, sql, params = self._prepare(session, rows)
        cursor.executemany(sql, params)
        return lambda: int(cursor.rowcount)

    def all(self, session: Session, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run the statement once; return every row it returned."""
        cursor, sql, converted = self._prepare(session, [params])
        if not self._prepared and isinstance(cursor, psycopg.Cursor):  # SQLite keeps no plans
            return list(cursor.execute(sql, converted[0], prepare=False).fetchall())
        return list(cursor.execute(sql, converted[0]).fetchall())


@functools.cache
def _dollar_dialect(dialect: Dialect) -> Dialect:
    """Return a PostgreSQL dialect like `dialect` that compiles `$1` placeholders (psycopg's RawCursor)."""
    kind: Any = type(dialect)
    dollar: Dialect = kind(paramstyle="numeric_dollar")
    dollar.server_version_info = dialect.server_version_info
    return dollar


class ByCount:
    """Statements that differ only in how many rows or values they carry: one `Raw` per count,
    built and compiled the first time that count runs (`build(count, dialect name)` makes it)."""

    def __init__(self, build: Callable[[int, str], Any]) -> None:
        self._build = build
        self._raws: dict[int, Raw] = {}

    def __call__(self, count: int) -> Raw:
        """Return the statement for `count` rows or values."""
        raw = self._raws.get(count)
        if raw is None:
            raw = self._raws[count] = Raw(functools.partial(self._build, count))
        return raw


class InsertMany:
    """An INSERT of many rows in one statement and one round trip, on the driver.

    Sent row by row (executemany), each row costs the client a socket write and the server a
    statement: on PostgreSQL that made a batch's inserts the dearest part of recording it. So on
    PostgreSQL, and wherever rows are returned, it is one multi-row VALUES (a statement per row
    count, compiled once). SQLite without RETURNING has no round trips to save: executemany.

    `conflict`: ON CONFLICT DO NOTHING on any unique key (True) or on these columns.
    `returning`: columns each inserted row returns (a row skipped by a conflict returns nothing);
    rows are inserted, and conflicts decided, in the order given.
    """

    def __init__(
        self,
        table: Table,
        keys: Sequence[str],
        *,
        conflict: bool | Sequence[str] = False,
        returning: Sequence[str] = (),
    ) -> None:
        self._table, self._keys, self._conflict, self._returning = table, tuple(keys), conflict, tuple(returning)
        self._each = Raw(lambda dialect: self._insert(dialect).inline(), keys=self._keys)
        #: The multi-row statement by row count and dialect, with the keys of one row's placeholders.
        self._row_forms: dict[tuple[int, str], tuple[str, _Converters]] = {}

    def _insert(self, dialect: str) -> Any:
        insert = insert_for(dialect)(self._table)
        if self._conflict is True:
            insert = insert.on_conflict_do_nothing()
        elif self._conflict:
            insert = insert.on_conflict_do_nothing(index_elements=list(self._conflict))
        return insert

    def _multi_values(self, count: int, dialect: str) -> Any:
        rows = [
            {key: bindparam(f"{key}_{n}", type_=self._table.c[key].type) for key in self._keys} for n in range(count)
        ]
        insert = self._insert(dialect).values(rows)
        return insert.returning(*(self._table.c[name] for name in self._returning)) if self._returning else insert

    def _row_form(self, count: int, dialect: Dialect) -> tuple[str, _Converters]:
        """Return the statement of `count` rows and its placeholders' keys in one row, with their converters.

        The placeholders run row by row, each row's in the same order (`key_0 ... key_0, key_1 ...`),
        so a row's values are converted by key, not looked up by each placeholder's name.
        """
        form = self._row_forms.get((count, dialect.name))
        if form is None:
            sql, converters = Raw(functools.partial(self._multi_values, count))._form(dialect)
            width = len(self._keys)
            row = [(name.removesuffix("_0"), convert) for name, convert in converters[:width]]
            assert [name for name, _ in converters] == [f"{key}_{n}" for n in range(count) for key, _ in row]
            form = self._row_forms[(count, dialect.name)] = (sql, row)
        return form

    def run(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Insert the rows in the session's transaction; return the rows they returned (none without `returning`)."""
        cursor = self.send(session, rows)
        return list(cursor.fetchall()) if cursor is not None and self._returning else []

    def send(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> Any:
        """Insert the rows in the session's transaction, leaving what they return unread; return the cursor.

        In a pipeline (`pipelined`) the INSERT then travels with the statements after it, instead of
        ending a round trip to read its answer.
        """
        if not rows:
            return None
        driver, dialect = Raw._driver(session)  # once: the SQLite test and the cursor share it
        if not self._returning and dialect.name == "sqlite":
            self._each.many(session, rows)
            return None
        cursor = Raw._open(driver, dialect)
        sql, row = self._row_form(len(rows), dialect)
        params = [convert(values[key]) if convert else values[key] for values in rows for key, convert in row]
        cursor.execute(sql, params)
        return cursor


#: The key of a connection's open pipeline in its `info` (`pipelined`).
_PIPELINE = "network.pipeline"
#: The key of the driver connection and dialect of a session's open pipeline in the session's `info`.
_PIPELINE_DRIVER = "network.pipeline.driver"


@contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """Send the driver statements run inside together (PostgreSQL's pipeline mode; SQLite has no trips).

    A driver statement is sent without waiting for its answer; reading an answer (fetch) ends the
    round trip, which carries every statement sent before. A statement SQLAlchemy runs inside
    (the ORM's) ends it at once (`_answer_now`): SQLAlchemy reads its answer's shape straight away.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        yield
        return
    driver: Any = connection.connection.driver_connection
    with driver.pipeline() as pipeline:
        connection.info[_PIPELINE] = pipeline
        # Kept with its transaction: once that ends (a rollback inside), the session's next one
        # may be on another connection.
        session.info[_PIPELINE_DRIVER] = (session.get_transaction(), driver, connection.dialect)
        try:
            yield
        finally:
            session.info.pop(_PIPELINE_DRIVER, None)
            # Gone already when SQLAlchemy dropped the connection meanwhile (its error is the one to see).
            connection.info.pop(_PIPELINE, None)


def _answer_now(conn: Any, _cursor: Any, _statement: Any, _parameters: Any, _context: Any, _many: bool) -> None:
    pipeline = conn.info.get(_PIPELINE)
    if pipeline is not None:
        pipeline.sync()
