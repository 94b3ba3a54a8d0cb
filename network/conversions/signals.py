"""Domain events of conversions, so later layers (ledger, partner postbacks) react in the same
transaction without conversions importing them (dependencies point one way)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent after a conversion is created or its status changes, inside the transaction that made
#: the change, with keyword arguments: session, conversion, old_status (None when created),
#: new_status, at (aware UTC datetime), reason (str | None). Receivers write rows in that
#: session (ledger entries, outbox rows) and must not commit.
status_changed = _signals.signal("conversion-status-changed")
