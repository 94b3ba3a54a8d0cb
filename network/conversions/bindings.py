"""Recording's part for customers: the turns of "first N conversions" terms, and new bindings.

In the recording's transaction (recording.record), once the new conversions are inserted:

1. `take_turns`: each accepted conversion attributed by its customer's binding whose event counts
   conversions ("first N") takes a turn: its count row is made if missing (INSERT ... ON CONFLICT DO
   NOTHING) and taken by a conditional UPDATE (`used < N`), in key order (two batches never wait on
   each other in a cycle), so two renewals at once never both pass the limit; one without a turn
   becomes rejected `recurring_ended`;
2. the caps take room (recording.py);
3. `settle`: a conversion that took a turn and found no room in its caps gives its turn back; each
   accepted conversion attributed by a click or a coupon that carries a customer_id (from the brand's
   server: a pixel never binds) binds the customer to its partner, link and offer (INSERT ... ON
   CONFLICT DO NOTHING: the first binding stays, also when two arrive at once); a new binding's
   count starts at one when its event counts conversions.

Nothing here runs for a postback without a customer_id.

API: `take_turns`, `settle`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Table, update
from sqlalchemy.orm import Session

from network.conversions.attribution import Plan
from network.conversions.models import Conversion
from network.customers import rules
from network.customers.models import Customer, CustomerCount
from network.db import insert_new

COUNTS = cast(Table, CustomerCount.__table__)
CUSTOMERS = cast(Table, Customer.__table__)
_KEY = ("brand_id", "customer_id", "event_id")


def _count_key(plan: Plan, conversion: Conversion) -> dict[str, Any]:
    return {"brand_id": conversion.brand_id, "customer_id": plan.data.customer_id, "event_id": conversion.event_id}


def _where(key: Mapping[str, Any]) -> Any:
    return (
        (COUNTS.c.brand_id == key["brand_id"])
        & (COUNTS.c.customer_id == key["customer_id"])
        & (COUNTS.c.event_id == key["event_id"])
    )


def take_turns(
    session: Session,
    plans: Sequence[Plan],
    conversions: Mapping[int, Conversion],
    reject: Callable[[Session, Conversion, str], None],
) -> list[int]:
    """Take a turn for each accepted conversion its customer's "first N" terms count; reject those without.

    Return the plans (by index) that took one.
    """
    todo = [
        i
        for i in sorted(conversions)
        if conversions[i].reason is None
        and plans[i].data.customer_id is not None
        and rules.turn_needed(attributed_by=plans[i].attributed_by, conversions=plans[i].link.recurring_conversions)
    ]
    taken: list[int] = []
    connection = session.connection()
    # Key order, arrival order within a key (a stable sort).
    for i in sorted(todo, key=lambda i: tuple(_count_key(plans[i], conversions[i]).values())):
        key = _count_key(plans[i], conversions[i])
        connection.execute(insert_new(session, COUNTS, keys=_KEY).values(**key, used=0))
        turn = connection.execute(
            update(COUNTS)
            .where(_where(key), COUNTS.c.used < plans[i].link.recurring_conversions)
            .values(used=COUNTS.c.used + 1)
            .returning(COUNTS.c.used)
        ).first()
        if turn is None:
            reject(session, conversions[i], rules.RECURRING_ENDED)
        else:
            taken.append(i)
    return taken


def settle(
    session: Session, plans: Sequence[Plan], conversions: Mapping[int, Conversion], taken: Sequence[int]
) -> None:
    """Give back the turns of conversions the caps rejected; bind the customers of new accepted conversions."""
    connection = session.connection()
    for i in taken:
        if conversions[i].status == "rejected":
            key = _count_key(plans[i], conversions[i])
            connection.execute(update(COUNTS).where(_where(key)).values(used=COUNTS.c.used - 1))
    firsts: dict[tuple[int, str], int] = {}
    for i in sorted(conversions):
        conversion, plan = conversions[i], plans[i]
        if plan.data.customer_id is None or conversion.status == "rejected" or plan.attributed_by == "customer":
            continue
        if plan.pixel:
            continue  # a browser is not authenticated: only the brand's server binds its customers
        firsts.setdefault((conversion.brand_id, plan.data.customer_id), i)  # the first of the batch binds
    if not firsts:
        return
    rows = [
        {
            "brand_id": brand_id, "customer_id": customer_id, "partner_id": conversions[i].partner_id,
            "link_id": conversions[i].link_id, "offer_id": conversions[i].offer_id, "bound_at": plans[i].now,
            "conversion_id": conversions[i].id, "moved_at": None,
        }
        for (brand_id, customer_id), i in sorted(firsts.items())
    ]  # fmt: skip
    bound = connection.execute(
        insert_new(session, CUSTOMERS, keys=("brand_id", "customer_id"))
        .values(rows)
        .returning(CUSTOMERS.c.brand_id, CUSTOMERS.c.customer_id)
    ).all()
    counted = [
        {**_count_key(plans[i], conversions[i]), "used": 1}
        for i in (firsts[(row.brand_id, row.customer_id)] for row in bound)
        if plans[i].link.recurring_conversions is not None
    ]
    if counted:
        # A count left from before (none: unbinding deletes them) stays as it is.
        connection.execute(insert_new(session, COUNTS, keys=_KEY).values(counted))
