"""network/db.py: the SQLite writers' line and driver statements."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import sqlite3
import threading
import time
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.dialects import sqlite

from network.clock import UTC
from network.conversions.models import PostbackLog
from network.db import _PIPELINE_DRIVER, Database, InsertMany, Raw, UTCDateTime


def test_sqlite_batches_of_two_databases_wait_in_line(tmp_path):
    url = f"sqlite:///{tmp_path}/line.db"
    first, second = Database(url), Database(url)  # two processes' worth: each its own descriptor
    inside, order = threading.Event(), []

    def hold() -> None:
        with first.writers_queue():
            inside.set()
            time.sleep(0.2)
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(timeout=5)
    with second.writers_queue():
        order.append("second in")
    holder.join(timeout=5)
    assert order == ["first out", "second in"]
    assert os.path.exists(f"{tmp_path}/line.db-writers")


def _hold_the_line(url: str, inside: Any, out: Any) -> None:
    with Database(url).writers_queue():
        inside.set()
        time.sleep(0.3)
        out.value = time.monotonic()


def test_sqlite_batches_of_two_processes_wait_in_line(tmp_path):
    url = f"sqlite:///{tmp_path}/processes.db"
    ctx = multiprocessing.get_context("spawn")
    inside, out = ctx.Event(), ctx.Value("d", 0.0)
    other = ctx.Process(target=_hold_the_line, args=(url, inside, out))
    other.start()
    try:
        assert inside.wait(timeout=30)
        with Database(url).writers_queue():
            entered = time.monotonic()
    finally:
        other.join(timeout=30)
    assert other.exitcode == 0
    assert entered >= out.value > 0


def test_a_session_holds_the_write_lock_from_its_first_statement(tmp_path):
    # BEGIN IMMEDIATE (run on the driver by the engine's begin event): a session that has only read
    # so far already holds the lock, so its later write never fails to upgrade.
    path = f"{tmp_path}/immediate.db"
    database = Database(f"sqlite:///{path}")
    with database.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER)")
        conn.commit()
    session = database.session()
    assert session.execute(text("SELECT count(*) FROM t")).scalar() == 0
    other = sqlite3.connect(path, timeout=0.1, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        session.rollback()
        other.execute("BEGIN IMMEDIATE")  # free again once the session ends
        other.execute("ROLLBACK")
    finally:
        other.close()
        session.close()
        database.dispose()


def test_a_read_session_does_not_wait_for_the_write_lock(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/read.db")
    with database.engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER)")
        conn.commit()
    writer = database.session()
    writer.execute(text("INSERT INTO t VALUES (1)"))  # BEGIN IMMEDIATE: holds the write lock
    try:
        started = time.monotonic()
        with database.read_session() as reader:
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
        assert time.monotonic() - started < 1  # a writing session would wait up to busy_timeout (10 s)
    finally:
        writer.rollback()
        writer.close()
        database.dispose()


def test_the_line_is_taken_again_after_an_error(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/again.db")
    try:
        with database.writers_queue():
            raise RuntimeError("a batch failed")
    except RuntimeError:
        pass
    done = threading.Event()

    def enter() -> None:
        with Database(database.url).writers_queue():
            done.set()

    threading.Thread(target=enter).start()
    assert done.wait(timeout=5)


def test_driver_statements_store_what_sqlalchemy_would(session):
    at = dt.datetime(2026, 3, 10, 12, 30, 15, 123456, tzinfo=UTC)
    row = {
        "received_at": at, "source": "postback", "method": "GET", "brand_id": None, "offer_id": 7,
        "click_id": "c", "txn_id": None, "params": {"amount": "1.00", "n": ["a", "b"]}, "http_status": 200,
        "conversion_id": None, "status": "approved", "reason": None, "duplicate": True, "remote_addr": None,
    }  # fmt: skip
    Raw(lambda _dialect: insert(PostbackLog).inline(), keys=list(row)).many(session, [row])
    session.execute(insert(PostbackLog), [{**row, "txn_id": "by sqlalchemy"}])
    by_driver, by_sqlalchemy = session.scalars(select(PostbackLog).order_by(PostbackLog.id)).all()
    for name in row:
        if name != "txn_id":
            assert getattr(by_driver, name) == getattr(by_sqlalchemy, name), name
    assert by_driver.received_at == at and by_driver.params == row["params"] and by_driver.duplicate is True


def test_many_rows_in_one_insert_store_what_sqlalchemy_would(session):
    at = dt.datetime(2026, 3, 10, 12, 30, 15, 123456, tzinfo=UTC)
    rows = [
        {
            "received_at": at + dt.timedelta(seconds=n), "source": "postback", "method": "GET", "brand_id": None,
            "offer_id": n, "click_id": f"c{n}", "txn_id": None, "params": {"n": [n, "x"]}, "http_status": 200,
            "conversion_id": None, "status": "approved", "reason": None, "duplicate": n == 2, "remote_addr": None,
        }
        for n in (1, 2, 3)
    ]  # fmt: skip
    assert InsertMany(cast(Table, PostbackLog.__table__), list(rows[0])).run(session, rows) == []
    session.execute(insert(PostbackLog), rows)
    stored = session.scalars(select(PostbackLog).order_by(PostbackLog.id)).all()
    assert len(stored) == 6
    for by_driver, by_sqlalchemy in zip(stored[:3], stored[3:], strict=True):
        for name in rows[0]:
            assert getattr(by_driver, name) == getattr(by_sqlalchemy, name), name
    assert [(r.offer_id, r.params, r.duplicate) for r in stored[:3]] == [
        (n, {"n": [n, "x"]}, n == 2) for n in (1, 2, 3)
    ]


_KEYED = Table(
    "insert_many_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("key", String(20), nullable=False, unique=True),
    Column("n", Integer, nullable=False),
)


def test_many_rows_in_one_insert_skip_taken_keys_and_return_the_rest(session):
    """The first row of a key wins, taken before or earlier in the same statement (batches' dedupe claim)."""
    _KEYED.create(session.connection())
    claim = InsertMany(_KEYED, ("key", "n"), conflict=True, returning=("id", "key", "n"))
    assert [row[1:] for row in claim.run(session, [{"key": "a", "n": 1}])] == [("a", 1)]
    batch = [{"key": "b", "n": 2}, {"key": "a", "n": 3}, {"key": "b", "n": 4}, {"key": "c", "n": 5}]
    returned = claim.run(session, batch)
    assert sorted(row[1:] for row in returned) == [("b", 2), ("c", 5)]
    assert len({row[0] for row in returned}) == 2
    stored = session.execute(select(_KEYED.c.key, _KEYED.c.n).order_by(_KEYED.c.key)).all()
    assert [tuple(row) for row in stored] == [("a", 1), ("b", 2), ("c", 5)]
    assert claim.run(session, []) == []


def test_many_rows_in_one_insert_keep_each_value_in_its_column_whatever_the_keys_order(session):
    # Keys listed in another order than the table's columns, and more than ten rows (placeholders
    # key_10 and up): every value must still land in its own column of its own row.
    _KEYED.create(session.connection())
    rows = [{"n": n, "key": f"k{n}"} for n in range(12)]
    returned = InsertMany(_KEYED, ("n", "key"), returning=("key", "n")).run(session, rows)
    assert [tuple(row) for row in returned] == [(f"k{n}", n) for n in range(12)]
    InsertMany(_KEYED, ("n", "key"), conflict=["key"]).run(session, [{"n": 100 + n, "key": f"m{n}"} for n in range(11)])
    stored = session.execute(select(_KEYED.c.key, _KEYED.c.n).where(_KEYED.c.key.like("m%"))).all()
    assert sorted(tuple(row) for row in stored) == sorted((f"m{n}", 100 + n) for n in range(11))


@given(st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.timezones()))
def test_sqlite_stores_a_utc_datetime_as_sqlalchemys_own_processor_would(value):
    sqlite_dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(sqlite_dialect).bind_processor(sqlite_dialect)
    theirs = sqlite.DATETIME().bind_processor(sqlite_dialect)
    assert ours is not None and theirs is not None
    naive_utc = value.astimezone(UTC).replace(tzinfo=None)
    assert ours(value) == theirs(naive_utc)  # stored strings compare and sort as before
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive"):
        ours(naive_utc)


def test_a_utc_datetime_round_trips_through_sqlite(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/utc.db")
    table = Table("stamps", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime()))
    table.create(database.engine)
    at = dt.datetime(2026, 3, 10, 13, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    with database.engine.begin() as conn:
        conn.execute(insert(table), [{"id": 1, "at": at}])
        assert conn.execute(select(table.c.at)).scalar_one() == at
        assert conn.exec_driver_sql("SELECT at FROM stamps").scalar_one() == "2026-03-10 12:00:00.000005"
    database.dispose()


def test_a_pipelines_driver_is_used_only_in_the_transaction_it_was_taken_in(committed_db):
    # pipelined() keeps its driver connection in the session's info, with the transaction it
    # belongs to: once that transaction ends, the session's next one may be on another connection.
    with committed_db.session_scope() as session:
        connection = session.connection()
        kept = object()
        session.info[_PIPELINE_DRIVER] = (session.get_transaction(), kept, connection.dialect)
        assert Raw._driver(session)[0] is kept
        session.info[_PIPELINE_DRIVER] = (object(), kept, connection.dialect)  # an ended transaction's
        assert Raw._driver(session)[0] is connection.connection.driver_connection


def test_a_forked_child_gets_pools_of_its_own_and_leaves_the_parents_connections_alone(tmp_path):
    # gunicorn --preload forks its workers from the master that made the app (network/db/sessions.py).
    database = Database(f"sqlite:///{tmp_path}/fork.db")
    with database.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")  # a connection now waits in the parent's pool
    parent_pool = database.engine.pool
    pid = os.fork()
    if pid == 0:  # the child: its own pool, and its own connection works
        try:
            with database.engine.connect() as conn:
                answered = conn.exec_driver_sql("SELECT 2").scalar() == 2
            os._exit(0 if answered and database.engine.pool is not parent_pool else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert database.engine.pool is parent_pool
    with database.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT 3").scalar() == 3
    database.dispose()
