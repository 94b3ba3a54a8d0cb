"""What /readyz checks: the database answers, its schema is at the migrations' head, the scheduler runs.

Each check answers a word: `ok`, or why not. The scheduler is required only when
READY_SCHEDULER_MINUTES is set (above 0): then a scheduled job must have ended (succeeded or failed)
within that many minutes, as the job status table records; unset, it is `not_required` (a web
process serves clicks whether or not the scheduler runs, and /metrics shows each job's last run).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text

from network import migrate
from network.clock import now_utc
from network.config import Settings
from network.db import Database
from network.payouts.models import JobStatus

OK = "ok"


@functools.cache
def _heads(url: str) -> frozenset[str]:
    """Return the migrations' heads (the files do not change while the process runs)."""
    return frozenset(ScriptDirectory.from_config(migrate.alembic_config(url)).get_heads())


def _migrations(connection: Any, url: str) -> str:
    current = frozenset(MigrationContext.configure(connection).get_current_heads())
    heads = _heads(url)
    if current == heads:
        return OK
    return f"at {','.join(sorted(current)) or 'none'}, head is {','.join(sorted(heads))}"


def _scheduler(connection: Any, minutes: int, now: dt.datetime) -> str:
    if minutes <= 0:
        return "not_required"
    last = connection.execute(select(func.max(JobStatus.last_success_at), func.max(JobStatus.last_failure_at))).one()
    seen = max((at for at in last if at is not None), default=None)
    if seen is None:
        return "no job has run"
    if seen.tzinfo is None:  # SQLite's func.max returns the stored text's naive time
        seen = seen.replace(tzinfo=dt.UTC)
    if now - seen > dt.timedelta(minutes=minutes):
        return f"no job ran in {minutes} minutes"
    return OK


def checks(database: Database, settings: Settings) -> dict[str, str]:
    """Return each readiness check's word: database, migrations, scheduler."""
    try:
        # A reading session: on SQLite it takes no write lock.
        with database.reading() as session:
            connection = session.connection()
            connection.execute(text("SELECT 1"))
            found = {"database": OK, "migrations": _migrations(connection, database.url)}
            try:
                found["scheduler"] = _scheduler(connection, settings.ready_scheduler_minutes, now_utc())
            except Exception:  # noqa: BLE001 - a schema without the table: the migrations check says why
                found["scheduler"] = "unknown"
            return found
    except Exception:  # noqa: BLE001 - whatever failed, the database did not answer
        return {"database": "unavailable", "migrations": "unknown", "scheduler": "unknown"}


def failing(found: dict[str, str]) -> list[str]:
    """Return the checks that fail (a scheduler not required passes)."""
    return [name for name, word in found.items() if word not in (OK, "not_required")]
