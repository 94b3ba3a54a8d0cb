"""The database layer, in parts with names; every name is importable from `network.db`.

- `base`: the declarative base of the models and the column types they share (`UTCDateTime`).
- `engines`: engines, SQLite's pragmas and BEGIN modes (`make_engine`).
- `sessions`: `Database`, its session factories and the job's and CLI's `session_scope`.
- `line`: the SQLite writers' line across processes (`Database.writers_queue`).
- `queries`: paging, optional filters and the dialect's INSERT forms.
- `driver`: the driver-level fast path of the postback batches (`Raw`, `InsertMany`, `pipelined`).

How a process waits for SQLite's write lock and the writers' line depends on the web server's
worker class: the serving layer chooses it once at start (network/serving.py, network/green.py).
"""

from network.db.base import NAMING, Base, UTCDateTime
from network.db.driver import _PIPELINE_DRIVER, ByCount, InsertMany, Raw, pipelined
from network.db.engines import BUSY_TIMEOUT_MS, READ_ONLY, make_engine
from network.db.queries import (
    DEFAULT_PAGE,
    MAX_PAGE,
    dialect_of,
    for_update,
    hour_end,
    insert_for,
    insert_new,
    json_object,
    one_at_a_time,
    paged,
    upsert,
    utc_day,
    utc_hour,
    where_given,
)
from network.db.sessions import Database

_READ_ONLY = READ_ONLY

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "NAMING",
    "READ_ONLY",
    "_PIPELINE_DRIVER",
    "_READ_ONLY",
    "Base",
    "ByCount",
    "Database",
    "InsertMany",
    "Raw",
    "UTCDateTime",
    "dialect_of",
    "for_update",
    "hour_end",
    "insert_for",
    "insert_new",
    "json_object",
    "make_engine",
    "one_at_a_time",
    "paged",
    "pipelined",
    "upsert",
    "utc_day",
    "utc_hour",
    "where_given",
]
