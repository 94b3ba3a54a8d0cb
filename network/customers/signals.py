"""Domain events of customers, so a later layer (the audit log, in payouts) records them in the same
transaction without customers importing it (dependencies point one way)."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: Sent when a brand or admin moves a customer to another partner or unbinds it, inside the
#: transaction that made the change, with keyword arguments: session, actor (the principal's
#: label), action (`customer.moved`, `customer.unbound`), customer_id (the binding's id), details
#: (a dict), at (aware UTC datetime). Receivers write rows in that session and must not commit.
customer_changed = _signals.signal("customer-changed")
