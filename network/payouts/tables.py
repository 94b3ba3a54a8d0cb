"""The payouts domain's tables as Core objects, for the bulk statements that work in SQL rather than
through the ORM's unit of work (a build attaches millions of entries, a settlement pays thousands)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import JSON, Table, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from network.db import insert_new
from network.offers.models import Offer
from network.partners.models import Partner
from network.payouts.models import (
    AuditLog,
    JobStatus,
    LedgerEntry,
    Payout,
    PayoutItem,
    PayoutItemRelease,
    StripeEvent,
)

payouts = cast(Table, Payout.__table__)
entries = cast(Table, LedgerEntry.__table__)
items = cast(Table, PayoutItem.__table__)
item_releases = cast(Table, PayoutItemRelease.__table__)
audit_log = cast(Table, AuditLog.__table__)
stripe_events = cast(Table, StripeEvent.__table__)
job_status = cast(Table, JobStatus.__table__)
partners = cast(Table, Partner.__table__)
offers = cast(Table, Offer.__table__)

#: Ids per IN list: far below every database's limit on bound parameters.
CHUNK = 1000


def insert_ignoring_duplicates(session: Session, table: Table, rows: list[dict[str, Any]], key: str) -> int:
    """INSERT rows, skipping those whose unique `key` exists (ON CONFLICT DO NOTHING); return how many went in."""
    if not rows:
        return 0
    stmt = insert_new(session, table, keys=[key]).returning(table.c[key])
    return len(session.execute(stmt, rows).all())


def chunks(ids: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    """Yield `ids` in slices of at most `size`, one statement's worth each."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


class json_pair(FunctionElement[Any]):  # noqa: N801 - an SQL function, named like one
    """A JSON object of one key and an SQL value: json_build_object on PostgreSQL, json_object on SQLite."""

    type = JSON()
    inherit_cache = True

    def __init__(self, key: str, value: Any) -> None:
        super().__init__(literal(key), value)


@compiles(json_pair)
def _json_object(element: json_pair, compiler: Any, **kw: Any) -> str:
    return f"json_object({compiler.process(element.clauses, **kw)})"


@compiles(json_pair, "postgresql")
def _json_build_object(element: json_pair, compiler: Any, **kw: Any) -> str:
    return f"json_build_object({compiler.process(element.clauses, **kw)})"
