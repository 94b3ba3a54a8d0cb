"""Declarative base, UTC datetime type, engine and sessions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, MetaData, Select, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

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


class Base(DeclarativeBase):
    """Base of every model; constraint names follow one convention so migrations are stable."""

    metadata = MetaData(naming_convention=NAMING)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # Statement errors never carry their parameters: they may hold postback tokens or keys.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        if url in {"sqlite://", "sqlite:///:memory:"}:
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
    return create_engine(url, **kwargs)


def _sqlite_autobegin_off(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE: take the write lock up front, so a read-then-write never fails to upgrade.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


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

    @property
    def dialect(self) -> str:
        """Return the dialect name: 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    def session(self) -> Session:
        """Return a new session."""
        return self.sessionmaker()

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """Yield a session that commits once at the end, or rolls back on error (jobs, CLI)."""
        session = self.sessionmaker()
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
