"""Domain events of conversions, so later layers (ledger, partner postbacks) react in the same
transaction without conversions importing them (dependencies point one way)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from blinker import Namespace

_signals = Namespace()

#: Sent after a conversion is created or its status changes, inside the transaction that made
#: the change, with keyword arguments: session, conversion, old_status (None when created),
#: new_status, at (aware UTC datetime), reason (str | None). Receivers write rows in that
#: session (ledger entries, outbox rows) and must not commit.
status_changed = _signals.signal("conversion-status-changed")

#: Sent once for many changes made in one transaction (postbacks recorded together, see
#: network/conversions/groupcommit.py), with keyword arguments: session, changes (a list of Change).
#: Only receivers connected with `connect_both` get it; `send_many` calls every other receiver of
#: status_changed once per change, so no receiver misses a change.
status_changed_many = _signals.signal("conversion-status-changed-many")

#: Receivers of status_changed that also receive status_changed_many (they want batches).
_BATCHED: set[Callable[..., Any]] = set()


@dataclass(frozen=True, slots=True)
class Change:
    """One conversion's status change, as status_changed's keyword arguments carry it."""

    conversion: Any
    old_status: str | None
    new_status: str
    at: dt.datetime
    reason: str | None


def connect_both(one: Callable[..., Any], many: Callable[..., Any]) -> None:
    """Connect `one` to status_changed and `many` to status_changed_many (for as long as the process runs)."""
    status_changed.connect(one, weak=False)
    status_changed_many.connect(many, weak=False)
    _BATCHED.add(one)


def send_many(session: Any, changes: Sequence[Change]) -> None:
    """Tell every receiver about `changes`: batch receivers once, the others once per change."""
    if not changes:
        return
    for receiver in list(status_changed.receivers_for(None)):
        if receiver in _BATCHED:
            continue
        for change in changes:
            receiver(
                None, session=session, conversion=change.conversion, old_status=change.old_status,
                new_status=change.new_status, at=change.at, reason=change.reason,
            )  # fmt: skip
    status_changed_many.send(session=session, changes=list(changes))
