"""Read the foundation's tables straight from the database, to prove a refused request changed nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: The tables of issue 2: keys, brands, partners, offers and everything hanging off them.
TABLES = ("brands", "partners", "api_keys", "offers", "offer_events", "caps", "partner_overrides", "offer_access")


def snapshot(session: Session) -> dict[str, list[tuple[Any, ...]]]:
    """Return every row of the foundation's tables, as the database holds them now."""
    return {
        table: [tuple(row) for row in session.execute(text(f'SELECT * FROM "{table}" ORDER BY id'))] for table in TABLES
    }
