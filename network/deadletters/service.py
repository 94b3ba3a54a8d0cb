"""Dead letters for people: rows the background writers could not store, listed and counted (admin, finance)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.db import DEFAULT_PAGE, paged
from network.deadletters.isolate import SOURCES
from network.deadletters.models import DeadLetter
from network.errors import NotFound


def _readable(principal: Principal) -> None:
    # They hold any tenant's rows: the operator's and finance's to read, no partner's or brand's.
    require(principal, Role.ADMIN, Role.FINANCE)


def list_dead_letters(
    session: Session,
    principal: Principal,
    *,
    source: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[DeadLetter]:
    """Return one page of dead letters, oldest first, of one writer or all."""
    _readable(principal)
    query = select(DeadLetter)
    if source is not None:
        query = query.where(DeadLetter.source == source)
    return list(session.scalars(paged(query, DeadLetter.id, limit=limit, after=after)))


def get_dead_letter(session: Session, principal: Principal, letter_id: int) -> DeadLetter:
    """Return one dead letter, or 404."""
    _readable(principal)
    row = session.get(DeadLetter, letter_id)
    if row is None:
        raise NotFound("dead letter not found")
    return row


def counts(session: Session, principal: Principal) -> dict[str, int]:
    """Return how many dead letters each writer left (every writer named, 0 when none)."""
    _readable(principal)
    rows = session.execute(select(DeadLetter.source, func.count()).group_by(DeadLetter.source))
    found = {source: count for source, count in rows}
    return {source: int(found.get(source, 0)) for source in (*SOURCES, *sorted(set(found) - set(SOURCES)))}
