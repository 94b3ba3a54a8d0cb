"""Scheduled tracking work: forget raw click IPs after the fraud window, stale visitor windows, and old clicks."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.orm import Session

from network.clock import as_utc
from network.db import Database, one_at_a_time
from network.tracking import partitions
from network.tracking.models import Click, ClickVisitor
from network.tracking.unique import UNIQUE_WINDOW


def purge_click_ips(session: Session, *, now: dt.datetime, retention_days: int) -> int:
    """Null the raw IP of clicks older than `retention_days`, and drop spent visitor windows; return the count."""
    # The keyed visitor hash stays: reports and uniqueness never needed the raw address. Windows of
    # uniqueness that ended long ago decide nothing any more.
    cutoff = now - dt.timedelta(days=retention_days)
    # The partial index ix_clicks_ip_held holds exactly the clicks that still have an IP: this walks
    # those older than the cutoff, however long since the last run, and nothing else.
    result = session.execute(
        update(Click)
        .where(Click.ip.is_not(None), Click.created_at < cutoff)
        .values(ip=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        delete(ClickVisitor)
        .where(ClickVisitor.window_start < now - 2 * UNIQUE_WINDOW)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def keep_click_partitions(database: Database, *, now: dt.datetime, retention_months: int) -> dict[str, Any]:
    """Make the coming months' click partitions and drop the clicks older than the retention; return what changed.

    Idempotent, and safe in several processes at once: each change is a transaction of its own (its
    locks held for milliseconds) that takes the partitions' advisory lock, then looks again at what
    exists. On SQLite, which keeps one table, the old clicks are deleted a day at a time.
    """
    cutoff = partitions.kept_from(now, retention_months)
    if database.dialect != "postgresql":
        return {"deleted": _delete_before(database, cutoff)}
    wanted = partitions.months_wanted(now)
    with _changing(database) as connection:
        # Months the default partition took clicks of (the job had not made them yet) are made too,
        # and its rows move in; a month far ahead (a clock far off) waits there until it is due.
        strays = [
            m for m in partitions.default_months(connection) if cutoff <= partitions.bounds(m)[0] and m <= wanted[-1]
        ]
        deleted = partitions.drop_default_before(connection, cutoff)
    created, moved = _make_months(database, sorted({*wanted, *strays}))
    dropped = _drop_expired(database, now, retention_months)
    return {"created": created, "moved": moved, "dropped": dropped, "deleted": deleted}


def _make_months(database: Database, months: list[dt.date]) -> tuple[list[str], int]:
    """Make the partitions of `months` that do not exist; return their names and the rows moved in."""
    created, moved = [], 0
    for month in months:
        with _changing(database) as connection:
            if partitions.name_of(month) not in partitions.existing(connection):
                moved += partitions.create_month(connection, month)
                created.append(partitions.name_of(month))
    return created, moved


def _drop_expired(database: Database, now: dt.datetime, retention_months: int) -> list[str]:
    """Detach and drop the month partitions wholly older than the retention; return their names."""
    with database.session_scope() as session:
        old = [
            name
            for name, month in partitions.existing(session.connection()).items()
            if month is not None and partitions.expired(month, now, retention_months)
        ]
    dropped = []
    for name in sorted(old):
        with _changing(database) as connection:
            if name in partitions.existing(connection):
                partitions.drop_month(connection, name)
                dropped.append(name)
    return dropped


@contextmanager
def _changing(database: Database) -> Iterator[Connection]:
    """Yield a connection in a transaction of its own that holds the partitions' lock (one job at a time)."""
    with database.session_scope() as session:
        one_at_a_time(session, partitions.LOCK_KEY)
        connection = session.connection()
        partitions.limit_waits(connection)
        yield connection


def _delete_before(database: Database, cutoff: dt.datetime) -> int:
    """Delete the clicks older than `cutoff`, a day of them per transaction (SQLite's write lock is the database's)."""
    deleted = 0
    while True:
        with database.session_scope() as session:
            oldest = session.scalar(select(func.min(Click.created_at)))
            if oldest is None or as_utc(oldest) >= cutoff:
                return deleted
            upto = min(as_utc(oldest) + dt.timedelta(days=1), cutoff)
            result = session.execute(
                delete(Click).where(Click.created_at < upto).execution_options(synchronize_session=False)
            )
            deleted += int(result.rowcount)  # type: ignore[attr-defined]
