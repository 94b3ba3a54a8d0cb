"""Marks: the hours a writer's transaction changed, inserted in that same transaction.

Every transaction that writes clicks or conversions, or changes what a conversion counts (its
status), inserts one mark per hour and source it touched: a plain INSERT of new rows, so no mark
ever leans on a row the rollup job is deleting. The job rolls up a marked hour again from the raw
rows and deletes the marks it read, in one transaction; a mark committed meanwhile stays for its
next run. So an hour without marks is rolled up exactly, and reports read a marked hour raw.

The writers on the driver's fast path call `mark` (clicks: network/tracking/writer.py, new
conversions: network/conversions/recording.py, status changes: network/conversions/statuses.py).
Rows the ORM flushes (the demo, tests' builders) are marked by the mapper events below, so no
writer can forget.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, event, insert
from sqlalchemy.orm import Mapper

from network.clock import now_utc
from network.db import InsertMany
from network.rollups import rules
from network.rollups.models import CLICKS, CONVERSIONS, RollupMark

_MARKS = InsertMany(cast(Table, RollupMark.__table__), ("hour", "source"))
#: The raw tables rollups sum, and the source their rows are.
_SOURCES = {"clicks": CLICKS, "conversions": CONVERSIONS}


def mark(session: Any, source: int, times: Iterable[dt.datetime]) -> None:
    """Mark the hours of `times` for `source` (CLICKS or CONVERSIONS) in the session's transaction."""
    _MARKS.run(session, [{"hour": hour, "source": source} for hour in rules.hours_of(times)])


def mark_clicks(session: Any, times: Iterable[dt.datetime], *, now: dt.datetime) -> None:
    """Mark the hours of clicks just written, and the conversions of every hour since (see rules.hours_since)."""
    hours = rules.hours_of(times)
    rows = [{"hour": hour, "source": CLICKS} for hour in hours]
    rows += [{"hour": hour, "source": CONVERSIONS} for hour in rules.hours_since(hours, now)]
    _MARKS.run(session, rows)


def _mark_flushed(_mapper: Mapper[Any], connection: Any, target: Any) -> None:
    source = _SOURCES.get(getattr(target, "__tablename__", ""))
    if source is None:
        return
    rows = [{"hour": rules.hour_of(target.created_at), "source": source}]
    if source == CLICKS:
        rows += [{"hour": hour, "source": CONVERSIONS} for hour in rules.hours_since([target.created_at], now_utc())]
    connection.execute(insert(RollupMark), rows)


# Every mapper: the ORM's own inserts and updates of clicks and conversions are marked too.
event.listen(Mapper, "after_insert", _mark_flushed)
event.listen(Mapper, "after_update", _mark_flushed)
event.listen(Mapper, "after_delete", _mark_flushed)
