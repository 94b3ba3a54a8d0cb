"""The statements of a click flush, sent straight to the driver: click rows, uniqueness windows, impression counts.

Why the driver and not SQLAlchemy: a flush runs in the web process, beside the requests, and
SQLAlchemy's per-row parameter processing (or compiling a many-row INSERT) costs more than the
database's own work for a batch of 500 clicks. On PostgreSQL clicks go by COPY and windows by one
`unnest` statement; on SQLite by multi-row INSERTs (see `insert_clicks` for why not executemany).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from functools import lru_cache
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from network.db import upsert
from network.tracking.models import Click, ClickVisitor, ImpressionCount
from network.tracking.pending import CLICK_COLUMNS, ROW, PendingClick

#: Impression counts: (link id, offer id, partner id, UTC day) -> impressions.
Impressions = Counter[tuple[int, int, int, dt.date]]
#: A uniqueness window: (link id, visitor hash, when it started).
Window = tuple[int, str, dt.datetime]
#: A uniqueness window as read: (link id, visitor hash, when it started, the unique click before it).
ReadWindow = tuple[int, str, dt.datetime, dt.datetime | None]

_CHUNK = 300
#: The flush runs in the web process: every this many rows it lets request threads have the GIL,
#: so a batch never holds them up for more than a fraction of a millisecond.
YIELD_EVERY = 50
#: Rows per multi-row INSERT on SQLite (19 parameters each; SQLite allows 32,766 per statement).
_SQLITE_ROWS = 500
_CREATED = CLICK_COLUMNS.index("created_at")
_UTM = CLICK_COLUMNS.index("utm")


def let_requests_run() -> None:
    """Hand the GIL to request threads for a moment."""
    time.sleep(0)


def _sqlite_time(value: dt.datetime) -> str:
    # The format SQLAlchemy's SQLite DateTime writes and reads: naive UTC with microseconds.
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(sep=" ", timespec="microseconds")[:26]


@lru_cache(maxsize=1024)
def _json(items: tuple[tuple[str, str], ...]) -> str:
    # Campaigns repeat the same utm values click after click.
    return json.dumps(dict(items))


def _utm_json(utm: dict[str, str] | None) -> str | None:
    return _json(tuple(utm.items())) if utm else None


def _raw(session: Session) -> tuple[Any, bool]:
    """Return the session's driver connection and whether it is PostgreSQL."""
    connection = session.connection()
    return connection.connection.driver_connection, connection.dialect.name == "postgresql"


def insert_clicks(session: Session, clicks: list[PendingClick]) -> None:
    """Insert click rows with the driver's bulk path: COPY on PostgreSQL, multi-row INSERTs on SQLite."""
    raw, postgres = _raw(session)
    columns = ", ".join(CLICK_COLUMNS)
    if postgres:
        with raw.cursor() as cursor, cursor.copy(f"COPY clicks ({columns}) FROM STDIN") as copy:
            for i, click in enumerate(clicks, 1):
                if i % YIELD_EVERY == 0:
                    let_requests_run()
                row = list(ROW(click))
                row[_UTM] = _utm_json(click.utm)
                copy.write_row(row)
        return
    # Multi-row INSERTs rather than executemany: sqlite3 releases the GIL around every statement
    # step, and a step per row would hand the GIL back and forth with request threads per row.
    values: list[Any] = []
    for i, click in enumerate(clicks, 1):
        if i % YIELD_EVERY == 0:
            let_requests_run()
        row = list(ROW(click))
        row[_CREATED] = _sqlite_time(click.created_at)
        row[_UTM] = _utm_json(click.utm)
        values.extend(row)
    width = len(CLICK_COLUMNS)
    one = "(" + ", ".join("?" * width) + ")"
    cursor = raw.cursor()
    try:
        for start in range(0, len(clicks), _SQLITE_ROWS):
            count = min(_SQLITE_ROWS, len(clicks) - start)
            cursor.execute(
                f"INSERT INTO clicks ({columns}) VALUES {', '.join([one] * count)}",  # noqa: S608 - our columns
                values[start * width : (start + count) * width],
            )
    finally:
        cursor.close()


def open_windows(session: Session, windows: list[Window]) -> set[tuple[int, str]]:
    """Insert uniqueness windows that do not exist yet; return the (link, visitor) keys opened."""
    raw, postgres = _raw(session)
    opened: set[tuple[int, str]] = set()
    cursor = raw.cursor()
    try:
        if postgres:
            cursor.execute(
                "INSERT INTO click_visitors (link_id, visitor, window_start)"
                " SELECT * FROM unnest(%s::int[], %s::text[], %s::timestamptz[])"
                " ON CONFLICT DO NOTHING RETURNING link_id, visitor",
                ([w[0] for w in windows], [w[1] for w in windows], [w[2] for w in windows]),
            )
            opened.update((link_id, visitor) for link_id, visitor in cursor.fetchall())
            return opened
        for start in range(0, len(windows), _CHUNK):
            chunk = windows[start : start + _CHUNK]
            cursor.execute(
                "INSERT INTO click_visitors (link_id, visitor, window_start) VALUES "  # noqa: S608 - placeholders only
                + ", ".join(["(?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING link_id, visitor",
                [value for link_id, visitor, at in chunk for value in (link_id, visitor, _sqlite_time(at))],
            )
            opened.update((link_id, visitor) for link_id, visitor in cursor.fetchall())
        return opened
    finally:
        cursor.close()


def _utc(value: Any) -> dt.datetime | None:
    """Return a driver's time value (SQLite's is text) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


def read_windows(session: Session, keys: list[tuple[int, str]]) -> list[ReadWindow]:
    """Return the existing uniqueness windows of (link, visitor) keys."""
    raw, postgres = _raw(session)
    found: list[ReadWindow] = []
    cursor = raw.cursor()
    try:
        if postgres:
            cursor.execute(
                "SELECT link_id, visitor, window_start, previous_start FROM click_visitors"
                " WHERE (link_id, visitor) IN (SELECT * FROM unnest(%s::int[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            rows = cursor.fetchall()
        else:
            rows = []
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                cursor.execute(
                    "SELECT link_id, visitor, window_start, previous_start"  # noqa: S608 - placeholders only
                    " FROM click_visitors WHERE (link_id, visitor) IN (VALUES "
                    + ", ".join(["(?, ?)"] * len(chunk))
                    + ")",
                    [value for key in chunk for value in key],
                )
                rows.extend(cursor.fetchall())
        for link_id, visitor, at, previous in rows:
            began = _utc(at)
            assert began is not None
            found.append((link_id, visitor, began, _utc(previous)))
        return found
    finally:
        cursor.close()


def move_window(session: Session, window: ReadWindow, start: dt.datetime, previous: dt.datetime | None) -> bool:
    """Set a window's start and previous start if it is still as it was read; False when another process changed it."""
    link_id, visitor, window_start, window_previous = window
    same_previous = (
        ClickVisitor.previous_start.is_(None)
        if window_previous is None
        else ClickVisitor.previous_start == window_previous
    )
    moved = session.execute(
        update(ClickVisitor)
        .where(
            ClickVisitor.link_id == link_id,
            ClickVisitor.visitor == visitor,
            ClickVisitor.window_start == window_start,
            same_previous,
        )
        .values(window_start=start, previous_start=previous)
        .execution_options(synchronize_session=False)
    )
    return moved.rowcount == 1  # type: ignore[attr-defined,no-any-return]


def unmark_unique(session: Session, offer_id: int, link_id: int, visitor: str, at: dt.datetime) -> None:
    """Clear the unique flag of the visitor's click on a link at `at` (an older click took the window)."""
    session.execute(
        update(Click)
        .where(
            Click.offer_id == offer_id,
            Click.created_at == at,
            Click.link_id == link_id,
            Click.visitor == visitor,
            Click.is_unique.is_(True),
        )
        .values(is_unique=False)
        .execution_options(synchronize_session=False)
    )


def count_impressions(session: Session, impressions: Impressions) -> None:
    """Add impression counts to their (link, day) rows."""
    items = sorted(impressions.items())
    for start in range(0, len(items), _CHUNK):
        chunk = items[start : start + _CHUNK]
        rows = [
            {"link_id": link, "offer_id": offer, "partner_id": partner, "day": day, "count": n}
            for (link, offer, partner, day), n in chunk
        ]
        added = upsert(
            session,
            ImpressionCount,
            rows,
            keys=["link_id", "day"],
            update=lambda new: {"count": ImpressionCount.count + new["count"]},
        )
        session.execute(added)
