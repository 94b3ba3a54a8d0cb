"""The driver-level fast path: the statements run for every conversion, on the driver's own cursor.

Why it exists: a postback batch runs a dozen statements per transaction, and through SQLAlchemy
(Core `session.execute`) its work per execution (compiling the cache key, building the result,
processing each parameter by name) cost more than the database's own work. Here a statement is
compiled once per dialect and run on the driver's cursor, its parameters converted by SQLAlchemy's
own type processors, so what is stored is what SQLAlchemy would store (tests/test_db.py checks).

The figure: the client's CPU per INSERT of postback log rows (the widest row a batch writes) on the
2-core machine, SQLAlchemy Core's `session.execute(insert(PostbackLog), rows)` against
`InsertMany.run` in one process, best of 5 runs of 300 statements:

    rows   SQLite: Core   driver     PostgreSQL: Core   driver
    1             126 us    14 us                467 us    90 us
    8             204 us    76 us                703 us   159 us

A batch runs about nine such statements per transaction; on PostgreSQL they also travel in one
round trip (`pipelined`).

Only the postback path uses it (network/conversions/, network/offers/caps.py, network/payouts/ledger.py);
everything else goes through SQLAlchemy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, Table, bindparam, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from network.db.queries import insert_for

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


def listen(engine: Engine) -> None:
    """Make SQLAlchemy's own statements end an open pipeline's round trip on `engine` (PostgreSQL)."""
    event.listen(engine, "after_cursor_execute", _answer_now)
