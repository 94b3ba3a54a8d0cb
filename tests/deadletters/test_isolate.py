"""Which errors are refusals, how refused rows are found and kept (network/deadletters/isolate.py)."""

from __future__ import annotations

import json
import logging
import sqlite3

import psycopg
import pytest
from sqlalchemy.exc import DataError, IntegrityError, InterfaceError, OperationalError, StatementError

from network.db import Database
from network.deadletters import isolate


def _wrapped(kind: type, orig: BaseException) -> BaseException:
    return kind("INSERT INTO t VALUES (?)", ["tok_secret"], orig)


@pytest.mark.parametrize(
    ("error", "refusal"),
    [
        (_wrapped(DataError, psycopg.DataError("value too long for type character varying(2)")), True),
        (_wrapped(IntegrityError, sqlite3.IntegrityError("FOREIGN KEY constraint failed")), True),
        (psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"), True),
        (sqlite3.IntegrityError("CHECK constraint failed"), True),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), True),
        (OverflowError("Python int too large to convert to SQLite INTEGER"), True),
        (StatementError("naive", "INSERT", {}, ValueError("naive datetime given for a UTC column")), True),
        # The database or the connection, not the values: retried, never dead-lettered.
        (_wrapped(OperationalError, psycopg.OperationalError("connection refused")), False),
        (_wrapped(OperationalError, sqlite3.OperationalError("database is locked")), False),
        (_wrapped(InterfaceError, psycopg.InterfaceError("the connection is closed")), False),
        (psycopg.errors.LockNotAvailable("lock timeout"), False),
        (psycopg.errors.AdminShutdown("terminating connection due to administrator command"), False),
        (ConnectionResetError("reset by peer"), False),
        (RuntimeError("a receiver broke"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_only_errors_about_the_values_are_refusals(error, refusal):
    assert isolate.refused(error) is refusal


def test_a_lost_connection_is_never_a_refusal_whatever_its_class():
    error = _wrapped(IntegrityError, psycopg.IntegrityError("x"))
    error.connection_invalidated = True
    assert not isolate.refused(error)


def test_the_reason_names_the_class_and_message_never_the_parameters():
    error = _wrapped(DataError, psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"))
    reason = isolate.describe(error)
    assert reason == "DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes"
    assert "tok_secret" not in reason and "INSERT" not in reason


def test_the_payload_is_ascii_json_with_nul_and_surrogates_escaped_and_bounded():
    text = isolate.payload({"sub1": "a\x00b", "sub2": "\ud800", "n": 1})
    assert text.isascii() and "\x00" not in text
    assert json.loads(text) == {"sub1": "a\x00b", "sub2": "\ud800", "n": 1}
    long = isolate.payload({"sub1": "x" * 100_000})
    assert len(long) == isolate.MAX_PAYLOAD and long.endswith("...(cut)")


def test_refused_rows_are_found_by_halves_and_the_rest_written_in_order():
    written: list[list[int]] = []

    def write(part):
        if 7 in part or 40 in part:
            raise psycopg.DataError("refused")
        written.append(list(part))

    refused: list[int] = []
    isolate.isolate(list(range(64)), write, lambda item, _error: refused.append(item))
    assert refused == [7, 40]
    flat = [i for part in written for i in part]
    assert flat == [i for i in range(64) if i not in (7, 40)]
    # Far fewer writes than rows: the good ones go in large parts.
    assert len(written) <= 2 * 6 * 2


def test_an_error_that_is_no_refusal_stops_the_isolation_and_propagates():
    calls: list[list[int]] = []

    def write(part):
        calls.append(list(part))
        if len(calls) == 1:
            raise psycopg.DataError("refused")
        raise psycopg.OperationalError("the database went away")

    with pytest.raises(psycopg.OperationalError):
        isolate.isolate([1, 2, 3, 4], write, lambda *_: pytest.fail("nothing is refused"))


def test_keeping_dead_letters_never_raises_even_when_the_database_is_gone(tmp_path, caplog):
    database = Database(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")  # its directory does not exist
    with caplog.at_level(logging.ERROR):
        isolate.keep(database, "clicks", [("DataError: refused", {"id": "c1"})])
    assert any("could not keep 1 dead letters of clicks" in r.getMessage() for r in caplog.records)
    assert any("DataError: refused" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    database.dispose()
