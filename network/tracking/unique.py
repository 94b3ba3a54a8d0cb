"""Which clicks are unique: a visitor's first on a link in `UNIQUE_WINDOW`, decided once across processes.

Bots and fallback clicks are never unique (so never billable). Of the others, the first per visitor
and link by time opens the visitor's window row, or moves one that has ended forward, or, when a
slower process brings an older click, moves it back to that click and takes the flag from the
click at its old start (tracking.rules.unique_call). Every change of a window is a conditional write
on the window as it was read (read again and decided again when another process changed it first),
so two processes flushing at once cannot both count a visitor as new, and the flag goes to the
visitor's first click whichever process wrote it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from network.clock import now_utc
from network.rollups import marks
from network.tracking import clicksql
from network.tracking.pending import PendingClick
from network.tracking.rules import unique_call

#: A visitor's next click on a link is unique again this long after its last unique one.
UNIQUE_WINDOW = dt.timedelta(hours=24)

#: (link id, visitor hash).
Key = tuple[int, str]


def _first_per_visitor(clicks: list[PendingClick], known: dict[Key, dt.datetime]) -> dict[Key, PendingClick]:
    """Return each visitor's first click per link that may be unique, clearing every click's flag."""
    first: dict[Key, PendingClick] = {}
    for click in sorted(clicks, key=lambda c: c.created_at):
        click.is_unique = False
        if click.is_bot or click.fallback_reason is not None or click.visitor is None:
            continue
        key = (click.link_id, click.visitor)
        seen = known.get(key)
        # Inside a known window: certainly not unique. Older than its start: another process's
        # window may have to move back to it, so it is decided on the window's row.
        if seen is not None and seen <= click.created_at < seen + UNIQUE_WINDOW:
            continue
        first.setdefault(key, click)
    return first


#: How many times a window another process keeps changing is read and decided again.
_TRIES = 5


def _move(
    session: Session, first: dict[Key, PendingClick], keys: list[Key], learned: dict[Key, dt.datetime]
) -> set[Key]:
    """Decide the clicks of `keys` on their windows' rows; return the keys whose click is unique.

    A window changed by another process between the read and the write is read and decided again.
    """
    unique: set[Key] = set()
    todo = sorted(keys)
    for _ in range(_TRIES):
        again: list[Key] = []
        for window in sorted(clicksql.read_windows(session, todo)):
            key = (window[0], window[1])
            click = first[key]
            call = unique_call(click.created_at, window[2], window[3], UNIQUE_WINDOW)
            if call.window is None:
                learned[key] = window[2]
                continue
            if not clicksql.move_window(session, window, *call.window):
                again.append(key)
                continue
            unique.add(key)
            learned[key] = call.window[0]
            if call.unmark_start:
                clicksql.unmark_unique(session, click.offer_id, key[0], key[1], window[2])
                marks.mark_clicks(session, [window[2]], now=now_utc())
        if not again:
            break
        todo = again
    return unique


def decide_unique(
    session: Session, clicks: list[PendingClick], known: dict[Key, dt.datetime]
) -> dict[Key, dt.datetime]:
    """Set `is_unique` on a batch of enriched clicks; return the window starts learned.

    `known`: window starts this process has seen. A window only ever moves forward, so a click
    inside a known one is certainly not unique and needs no query.
    """
    first = _first_per_visitor(clicks, known)
    learned: dict[Key, dt.datetime] = {}
    if not first:
        return learned
    opened = clicksql.open_windows(session, [(key[0], key[1], click.created_at) for key, click in first.items()])
    for key in opened:
        learned[key] = first[key].created_at
    rest = [key for key in first if key not in opened]
    if rest:
        opened |= _move(session, first, rest, learned)
    for key in opened:
        first[key].is_unique = True
    return learned
