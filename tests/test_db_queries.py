"""network/db/queries.py: the forms that differ by dialect, named once, on both databases."""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import Column, Integer, MetaData, String, Table, select

from network.clock import UTC
from network.db import UTCDateTime, for_update, insert_new, json_object, one_at_a_time, upsert, utc_day

_COUNTS = Table(
    "queries_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("key", String(20), nullable=False, unique=True),
    Column("n", Integer, nullable=False),
    Column("at", UTCDateTime(), nullable=True),
)


def _stored(session) -> list[tuple[str, int]]:
    return [tuple(row) for row in session.execute(select(_COUNTS.c.key, _COUNTS.c.n).order_by(_COUNTS.c.key))]


def test_an_insert_of_new_rows_skips_a_taken_key(session):
    _COUNTS.create(session.connection())
    session.execute(insert_new(session, _COUNTS, keys=["key"]), [{"key": "a", "n": 1}, {"key": "b", "n": 2}])
    session.execute(insert_new(session, _COUNTS), [{"key": "a", "n": 3}, {"key": "c", "n": 4}])
    assert _stored(session) == [("a", 1), ("b", 2), ("c", 4)]


def test_an_upsert_updates_the_row_whose_key_is_taken(session):
    _COUNTS.create(session.connection())
    rows = [{"key": "a", "n": 1}, {"key": "b", "n": 2}]
    for _ in range(2):
        session.execute(upsert(session, _COUNTS, rows, keys=["key"], update=lambda new: {"n": _COUNTS.c.n + new.n}))
    assert _stored(session) == [("a", 2), ("b", 4)]


def test_rows_read_for_update_and_one_at_a_time_run_on_both_databases(session):
    _COUNTS.create(session.connection())
    session.execute(insert_new(session, _COUNTS), [{"key": "a", "n": 1}])
    one_at_a_time(session, 4242)
    query = for_update(select(_COUNTS.c.n), session, skip_locked=True)
    assert session.scalars(query).all() == [1]
    postgres = session.get_bind().dialect.name == "postgresql"
    assert ("FOR UPDATE SKIP LOCKED" in str(query.compile(session.get_bind()))) == postgres


def test_json_objects_and_utc_days_read_the_same_on_both_databases(session):
    _COUNTS.create(session.connection())
    at = dt.datetime(2026, 3, 10, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))  # 01:30 UTC, the 11th
    session.execute(_COUNTS.insert(), [{"key": "a", "n": 7, "at": at}])
    obj, day = session.execute(
        select(json_object(session, ("key", _COUNTS.c.key), ("n", _COUNTS.c.n)), utc_day(_COUNTS.c.at))
    ).one()
    assert (obj if isinstance(obj, dict) else json.loads(obj)) == {"key": "a", "n": 7}
    assert str(day) == "2026-03-11"
    assert at.astimezone(UTC).date() == dt.date(2026, 3, 11)
