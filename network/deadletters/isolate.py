"""A batch goes on past a row the database refuses: which errors are refusals, how the refused rows
are found (by halves), and how they are kept (the dead_letters table, in a transaction of its own).

A refusal is about the values written: a NUL byte or a lone surrogate, a value past its column's
length or range, a constraint the row breaks. Retrying the same rows can never succeed, so the batch
is written in halves until each refused row stands alone; the others are written, the refused ones
kept as dead letters. Any other error (the database restarting, a lost connection, a lock timeout,
SQLite busy) is no refusal: the writer keeps the batch and retries it, losing nothing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from sqlalchemy import exc
from sqlalchemy.orm import Session

from network import text as text_rule
from network.clock import now_utc
from network.db import Database
from network.deadletters.models import DeadLetter

log = logging.getLogger(__name__)

#: The writers that keep dead letters.
SOURCES = ("clicks", "impressions", "postbacks", "outbox", "delivery_log")
#: Set in a session's `info`: a writer that batches rows in it writes them one by one instead, each
#: in a SAVEPOINT, keeping a refused one as a dead letter in the same transaction (`keep_in`).
ONE_BY_ONE = "network.deadletters.one_by_one"
#: What a dead letter keeps of its row and of its reason, at most (characters).
MAX_PAYLOAD = 16_384
MAX_REASON = 1_000
_CUT = "...(cut)"

#: Errors that refuse the values, not the connection: the same rows would be refused again.
_REFUSALS: tuple[type[BaseException], ...] = (
    exc.DataError,
    exc.IntegrityError,
    psycopg.DataError,
    psycopg.IntegrityError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    # Raised by a driver or a type's bind processor before the value reaches the database: a lone
    # surrogate (UnicodeEncodeError), an integer past SQLite's 64 bits, a naive datetime.
    ValueError,
    OverflowError,
)
_Item = TypeVar("_Item")


def refused(error: BaseException) -> bool:
    """Return whether the database (or its driver) refused the values written, not the connection."""
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return False
    if isinstance(error, _REFUSALS):
        return True
    # SQLAlchemy's StatementError around a bind processor's ValueError.
    orig = getattr(error, "orig", None)
    return isinstance(orig, _REFUSALS) and not isinstance(orig, exc.DBAPIError)


def describe(error: BaseException) -> str:
    """Return the error's class and the database's message: never the statement or its parameters."""
    orig = getattr(error, "orig", None) or error
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or (str(orig).strip().splitlines() or [""])[0]
    constraint = getattr(diag, "constraint_name", None)
    reason = f"{type(orig).__name__}: {message}"
    if constraint:
        reason += f" (constraint {constraint})"
    return text_rule.storable(reason, MAX_REASON, free_text=True)


def payload(row: Any) -> str:
    """Return a row as JSON text any database stores: ASCII only (NUL and surrogates escaped), bounded."""
    text = json.dumps(row, default=str, ensure_ascii=True, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= MAX_PAYLOAD else text[: MAX_PAYLOAD - len(_CUT)] + _CUT


def isolate(
    items: Sequence[_Item],
    write: Callable[[Sequence[_Item]], Any],
    refuse: Callable[[_Item, BaseException], None],
    *,
    error: BaseException | None = None,
) -> None:
    """Write `items` in halves until each refused one stands alone, and hand those to `refuse`.

    `write` writes and commits a part, or raises and leaves nothing of it. `error`: the refusal the
    whole already met (it is not written again). Parts are written in order. An error that is not a
    refusal propagates: the caller keeps what was neither written nor refused.
    """
    if error is None:
        try:
            write(items)
            return
        except Exception as failure:
            if not refused(failure):
                raise
            error = failure
    if len(items) <= 1:
        for item in items:
            refuse(item, error)
        return
    middle = len(items) // 2
    isolate(items[:middle], write, refuse)
    isolate(items[middle:], write, refuse)


def keep_in(session: Session, source: str, reason: str, row: Any) -> None:
    """Add a dead letter to the session's transaction (kept if and only if it commits)."""
    log.warning("dead letter (%s): %s", source, reason)
    session.add(
        DeadLetter(
            created_at=now_utc(),
            source=source,
            reason=text_rule.storable(reason, MAX_REASON, free_text=True),
            payload=payload(row),
        )
    )


def keep(database: Database, source: str, letters: Sequence[tuple[str, Any]]) -> None:
    """Store (reason, row) dead letters of a writer in a transaction of their own; never raise.

    A writer must go on whatever happens here: when even this fails, each one is logged at ERROR.
    """
    if not letters:
        return
    now = now_utc()
    for reason, _row in letters:
        log.warning("dead letter (%s): %s", source, reason)
    try:
        with database.session_scope() as session:
            session.add_all(
                DeadLetter(
                    created_at=now,
                    source=source,
                    reason=text_rule.storable(reason, MAX_REASON, free_text=True),
                    payload=payload(row),
                )
                for reason, row in letters
            )
    except Exception as failure:  # noqa: BLE001 - the writer goes on; the rows are in the log instead
        log.error(
            "could not keep %d dead letters of %s (%s): %s",
            len(letters),
            source,
            describe(failure),
            "; ".join(reason for reason, _row in letters[:20]),
        )
