"""Query helpers every domain uses: keyset pages, optional filters, and the forms that differ by dialect.

What SQLite and PostgreSQL spell differently (ON CONFLICT, row locks, advisory locks) is named
here, so that domain code does not branch on the dialect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Date, Select, String, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from network.db.base import UTCDateTime

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


def dialect_of(bind: Any) -> str:
    """Return the dialect name of a session, connection or engine ('sqlite', 'postgresql'); a name as is."""
    if isinstance(bind, str):
        return bind
    if hasattr(bind, "get_bind"):  # a session, or a stand-in for one (the postback request's)
        bind = bind.get_bind()
    return str(bind.dialect.name)


def insert_for(dialect: str) -> Any:
    """Return the INSERT construct of a dialect ("postgresql" or "sqlite"): their ON CONFLICT clauses differ."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def insert_new(bind: Any, table: Any, *, keys: Sequence[str] | None = None) -> Any:
    """Return an INSERT into `table` that skips a row whose unique key is taken (ON CONFLICT DO NOTHING).

    `bind`: a session, connection, engine or dialect name; `keys`: the columns of the unique key
    that decides (any unique key when None).
    """
    insert = insert_for(dialect_of(bind))(table)
    return insert.on_conflict_do_nothing(index_elements=list(keys)) if keys else insert.on_conflict_do_nothing()


def upsert(bind: Any, table: Any, rows: Any, *, keys: Sequence[str], update: Callable[[Any], dict[str, Any]]) -> Any:
    """Return an INSERT of `rows` that updates the row whose unique `keys` are taken (ON CONFLICT DO UPDATE).

    `update(excluded)` returns the new values by column name; `excluded` is the row that was refused.
    """
    insert = insert_for(dialect_of(bind))(table).values(rows)
    return insert.on_conflict_do_update(index_elements=list(keys), set_=update(insert.excluded))


def for_update(query: _Query, bind: Any, *, skip_locked: bool = False) -> _Query:
    """Return `query` locking the rows it reads until the transaction ends (PostgreSQL's FOR UPDATE).

    On SQLite a writing transaction holds the database's one write lock from BEGIN IMMEDIATE on
    (network/db/engines.py), so the query is returned as it is.
    """
    if dialect_of(bind) != "postgresql":
        return query
    return query.with_for_update(skip_locked=skip_locked)


def one_at_a_time(session: Session, key: int) -> None:
    """Let one transaction at a time past this point for `key`, until it ends (an advisory lock).

    PostgreSQL's transaction-level advisory lock; on SQLite a writing transaction already excludes
    every other writer.
    """
    if dialect_of(session) == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(key)))


def json_object(bind: Any, *pairs: tuple[str, Any]) -> ColumnElement[Any]:
    """Return a SQL JSON object of (key, column) pairs (json_build_object on PostgreSQL, json_object on SQLite)."""
    build = func.json_build_object if dialect_of(bind) == "postgresql" else func.json_object
    return build(*(part for key, value in pairs for part in (key, value)))


# Times in SQL, compiled per database by SQLAlchemy (`compiles`), so a query is the same on both.
# PostgreSQL holds aware timestamps; SQLite the naive UTC text UTCDateTime writes
# ("YYYY-MM-DD HH:MM:SS.ffffff"). The 'UTC' literal is inline, not bound: PostgreSQL must see the
# same expression in SELECT and GROUP BY.
_UTC = "'UTC'"


class utc_day(FunctionElement[dt.date]):  # noqa: N801 - a SQL function, named like one
    """The UTC day of a UTCDateTime column (or a date column as is), comparable across sources."""

    inherit_cache = True


@compiles(utc_day)
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    # date() of a date string is the string itself.
    return compiler.process(func.date(*element.clauses), **kw)


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    [column] = element.clauses
    if isinstance(column.type, Date):
        return compiler.process(column, **kw)
    return compiler.process(cast(func.timezone(literal_column(_UTC, String), column), Date), **kw)


class utc_hour(FunctionElement[dt.datetime]):  # noqa: N801 - a SQL function, named like one
    """The start of the UTC hour of a UTCDateTime column, in the column's own form."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(utc_hour)
def _utc_hour_sqlite(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    [column] = element.clauses
    return f"strftime('%Y-%m-%d %H:00:00.000000', {compiler.process(column, **kw)})"


@compiles(utc_hour, "postgresql")
def _utc_hour_postgresql(element: utc_hour, compiler: SQLCompiler, **kw: Any) -> str:
    [column] = element.clauses
    return f"(date_trunc('hour', {compiler.process(column, **kw)} AT TIME ZONE {_UTC}) AT TIME ZONE {_UTC})"


class hour_end(FunctionElement[dt.datetime]):  # noqa: N801 - a SQL function, named like one
    """The end of the hour starting at a UTCDateTime column (an hour later), in the column's own form."""

    type = UTCDateTime()
    inherit_cache = True


@compiles(hour_end)
def _hour_end_sqlite(element: hour_end, compiler: SQLCompiler, **kw: Any) -> str:
    # An hour start has zero minutes.
    [column] = element.clauses
    return f"strftime('%Y-%m-%d %H:00:00.000000', {compiler.process(column, **kw)}, '+1 hour')"


@compiles(hour_end, "postgresql")
def _hour_end_postgresql(element: hour_end, compiler: SQLCompiler, **kw: Any) -> str:
    [column] = element.clauses
    return f"({compiler.process(column, **kw)} + interval '1 hour')"
