"""The clicks table's monthly partitions on PostgreSQL: their names and ranges, and the DDL that keeps them.

On PostgreSQL `clicks` is partitioned by range of `created_at`, one partition per UTC month
(`partitions.clicks_2026_12`), plus a DEFAULT partition (`partitions.clicks_default`) that takes a
click of a month without a partition (a clock far off, the job not run), so no click is ever
refused. The partitions live in a schema of their own, `partitions`: what reads the app's schema
(alembic's comparison with the models) sees one table, `clicks`. SQLite keeps a plain table.

A daily job (network/tracking/jobs.py `keep_click_partitions`) creates the partitions of the
current month and `AHEAD` months after it, moves rows the default partition holds for a month it
creates, and detaches and drops the partitions wholly older than the retention (CLICK_RETENTION_MONTHS):
a click is kept between `retention` and `retention + 1` months. Rollups keep their sums for ever,
and a conversion attributes from the click id alone (network/conversions/attribution.py), so a
dropped click still converts, with its link's sub ids instead of its own.

pg_partman would do the same where it is installed; it is an extension of the server, not a library,
and the job needs no more than these statements. The primary key is (id, created_at), as a unique
key of a partitioned table must hold the partition key; every lookup by id also gives the range its
time lies in (`around`), decoded from the signed id, so PostgreSQL reads one partition.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import Connection, text

from network.clock import UTC

#: The schema that holds the partitions.
SCHEMA = "partitions"
TABLE = "clicks"
#: The partition of clicks of a month without one of its own.
DEFAULT = f"{TABLE}_default"
#: Months created ahead of the current one: the job may miss a few runs and clicks still land in theirs.
AHEAD = 3
#: A click row's created_at is its id's time, cut to the millisecond; this much either side covers any rounding.
SLACK = dt.timedelta(seconds=1)
#: The advisory lock key that lets one job at a time change the partitions ("clkp").
LOCK_KEY = 0x636C6B70
#: How long a DDL statement waits for a lock before failing (the scheduler retries): a waiting
#: ALTER TABLE holds up every click write queued behind it.
LOCK_TIMEOUT = "5s"

#: Autovacuum settings of each partition (a partitioned table's own are not inherited): clicks only
#: grow, and the default scale factors wait for a fifth of a month to change (docs/PRODUCTION.md).
STORAGE = (
    "autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_vacuum_scale_factor = 0.01,"
    " autovacuum_analyze_scale_factor = 0.01"
)

_NAME = re.compile(rf"^{TABLE}_(\d{{4}})_(\d{{2}})$")


# ---- the rules: pure ------------------------------------------------------------------------------


def month_of(at: dt.datetime) -> dt.date:
    """Return the first day of the UTC month holding `at`."""
    return at.astimezone(UTC).date().replace(day=1)


def add_months(month: dt.date, months: int) -> dt.date:
    """Return the first day of the month `months` after (or before, when negative) `month`."""
    index = month.year * 12 + month.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return the range of created_at a month's partition holds: [start, end)."""
    start = dt.datetime(month.year, month.month, 1, tzinfo=UTC)
    end = add_months(month, 1)
    return start, dt.datetime(end.year, end.month, 1, tzinfo=UTC)


def name_of(month: dt.date) -> str:
    """Return the partition name of a month (clicks_2026_12)."""
    return f"{TABLE}_{month.year:04d}_{month.month:02d}"


def month_named(name: str) -> dt.date | None:
    """Return the month of a partition name, or None for another table (the default, an operator's)."""
    found = _NAME.match(name)
    if found is None or not 1 <= int(found[2]) <= 12:
        return None
    return dt.date(int(found[1]), int(found[2]), 1)


def months_wanted(now: dt.datetime, ahead: int = AHEAD) -> list[dt.date]:
    """Return the months that must have a partition at `now`: the current one and `ahead` after it."""
    current = month_of(now)
    return [add_months(current, n) for n in range(ahead + 1)]


def kept_from(now: dt.datetime, retention_months: int) -> dt.datetime:
    """Return the oldest created_at kept: the start of the month `retention_months` before the current one.

    A partition ends at or before it only when all its clicks are at least `retention_months` old.
    """
    return bounds(add_months(month_of(now), -retention_months))[0]


def expired(month: dt.date, now: dt.datetime, retention_months: int) -> bool:
    """Return whether a month's partition is wholly older than the retention."""
    return bounds(month)[1] <= kept_from(now, retention_months)


def around(times: Iterable[dt.datetime]) -> tuple[dt.datetime, dt.datetime]:
    """Return a created_at range [low, high) holding the rows of clicks whose ids carry `times`."""
    ordered = sorted(times)
    return ordered[0] - SLACK, ordered[-1] + SLACK


# ---- the DDL: PostgreSQL only ----------------------------------------------------------------------


def _literal(at: dt.datetime) -> str:
    # Partition bounds are literals in the DDL (no parameters there); ours are UTC month starts.
    return f"'{at.astimezone(UTC).isoformat()}'"


def create_default(connection: Connection) -> None:
    """Create the partitions' schema and the default partition (the migration runs it)."""
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    connection.execute(
        text(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{DEFAULT} PARTITION OF {TABLE} DEFAULT WITH ({STORAGE})")
    )


def existing(connection: Connection) -> dict[str, dt.date | None]:
    """Return the partitions of clicks by name, with the month of each (None: the default, or not ours)."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = CAST(:parent AS regclass)"
        ),
        {"parent": TABLE},
    ).scalars()
    return {name: month_named(name) for name in names}


def limit_waits(connection: Connection) -> None:
    """Make this transaction's statements give up on a lock after LOCK_TIMEOUT."""
    connection.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))


def create_month(connection: Connection, month: dt.date) -> int:
    """Create a month's partition, moving into it what the default partition holds of the month.

    Return how many rows were moved. Built apart and attached, so the table is locked only against
    other schema changes (SHARE UPDATE EXCLUSIVE), never against click writes; the default partition
    is locked while its rows of the month move and the attach checks it holds none any more.
    """
    start, end = bounds(month)
    name = f"{SCHEMA}.{name_of(month)}"
    connection.execute(text(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS) WITH ({STORAGE})"))
    connection.execute(text(f"LOCK TABLE {SCHEMA}.{DEFAULT} IN ACCESS EXCLUSIVE MODE"))
    moved = connection.execute(
        text(
            f"WITH moved AS (DELETE FROM {SCHEMA}.{DEFAULT} WHERE created_at >= :start AND created_at < :end"  # noqa: S608 - our names
            f" RETURNING *) INSERT INTO {name} SELECT * FROM moved"
        ),
        {"start": start, "end": end},
    ).rowcount
    connection.execute(
        text(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({_literal(start)}) TO ({_literal(end)})")
    )
    return int(moved)


def drop_month(connection: Connection, name: str) -> None:
    """Detach a month's partition from clicks and drop it.

    Once a month. DETACH locks the table against writes for a moment (CONCURRENTLY is refused
    where a default partition exists); a click flush waiting meanwhile stays buffered, and the
    lock timeout keeps the wait short.
    """
    connection.execute(text(f"ALTER TABLE {TABLE} DETACH PARTITION {SCHEMA}.{name}"))
    connection.execute(text(f"DROP TABLE {SCHEMA}.{name}"))


def default_months(connection: Connection) -> list[dt.date]:
    """Return the months the default partition holds clicks of."""
    starts = connection.execute(
        text(f"SELECT DISTINCT date_trunc('month', created_at, 'UTC') FROM {SCHEMA}.{DEFAULT}")  # noqa: S608
    ).scalars()
    return sorted(month_of(start) for start in starts)


def drop_default_before(connection: Connection, cutoff: dt.datetime) -> int:
    """Delete the default partition's clicks older than `cutoff`; return how many."""
    deleted = connection.execute(
        text(f"DELETE FROM {SCHEMA}.{DEFAULT} WHERE created_at < :cutoff"),  # noqa: S608 - our names
        {"cutoff": cutoff},
    ).rowcount
    return int(deleted)
