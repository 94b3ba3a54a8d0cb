"""network/db.py: the SQLite writers' line and driver statements."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import threading
import time
from typing import Any

from sqlalchemy import insert, select, text

from network.clock import UTC
from network.conversions.models import PostbackLog
from network.db import Database, Raw


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
