"""Which clicks are unique: a visitor's first on a link in `UNIQUE_WINDOW`, decided once across processes.

Bots and fallback clicks are never unique (so never billable). Of the others, the first per visitor
and link opens the visitor's window row, or moves one that has ended forward; both are conditional
writes, so two processes flushing at once cannot both count a visitor as new.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from network.tracking import clicksql
from network.tracking.pending import PendingClick

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
        if seen is not None and seen > click.created_at - UNIQUE_WINDOW:
            continue
        first.setdefault(key, click)
    return first


def _move_ended(
    session: Session, first: dict[Key, PendingClick], keys: list[Key], learned: dict[Key, dt.datetime]
) -> set[Key]:
    """Move forward the windows of `keys` that have ended; return the keys moved, noting the others in `learned`."""
    moved: set[Key] = set()
    for window in clicksql.read_windows(session, keys):
        key = (window[0], window[1])
        click = first[key]
        if window[2] > click.created_at - UNIQUE_WINDOW:
            learned[key] = window[2]
        elif clicksql.move_window(session, window, click.created_at):
            moved.add(key)
    return moved


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
    rest = [key for key in first if key not in opened]
    if rest:
        opened |= _move_ended(session, first, rest, learned)
    for key in opened:
        first[key].is_unique = True
        learned[key] = first[key].created_at
    return learned
