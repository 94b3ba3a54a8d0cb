"""network/db.py: the SQLite writers' line and driver statements."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time

from sqlalchemy import insert, select

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
