"""Click rows and impression counts, buffered in memory and written in batches off the request path.

A background thread flushes every `interval` seconds (0.1) or as soon as `batch` (500) clicks wait.
A flush computes what the request did not have to: device class and bot flag from the user agent,
the keyed visitor hash, the country (when no targeting needed it earlier) and the `unique` flag, then
writes every row in one transaction (one multi-row statement per table). A clean shutdown (atexit,
which gunicorn workers run when they exit) flushes what is left.

A row the database refuses (a NUL byte on PostgreSQL, a value past its column, a link that is gone)
never holds up the others: the batch is written in halves around it and it is kept as a dead letter
with the database's reason (network/deadletters). Any other failure (the database restarting or
unreachable, a lock timeout) keeps the batch buffered and retries it with backoff (up to 5 s apart)
for as long as it takes; past `max_pending` buffered clicks, new ones are dropped, counted in
`dropped` and logged at ERROR. The shutdown flush retries for up to `shutdown_wait` seconds (10).

What a hard crash (SIGKILL, power loss, OOM kill) loses: the clicks of the last flush interval of the
killed process (about 0.1 s of its traffic, at most `max_pending` rows while the database is
unreachable). Their click ids stay valid: a conversion is attributed from the id alone.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import json
import logging
import operator
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from network import outage
from network.db import Database, insert_for
from network.deadletters import isolate
from network.tracking.models import Click, ClickVisitor, ImpressionCount
from network.tracking.traffic import CountryResolver, VisitorHasher, classify_agent

log = logging.getLogger(__name__)

#: A visitor's next click on a link is unique again this long after its last unique one.
UNIQUE_WINDOW = dt.timedelta(hours=24)
_CHUNK = 300
#: The flush runs in the web process: every this many rows it lets request threads have the GIL,
#: so a batch never holds them up for more than a fraction of a millisecond.
_YIELD_EVERY = 50
#: Rows per multi-row INSERT on SQLite (19 parameters each; SQLite allows 32,766 per statement).
_SQLITE_ROWS = 500


def _let_requests_run() -> None:
    time.sleep(0)


_CLICKS = Click.__table__
_CLICK_COLUMNS = tuple(c.name for c in _CLICKS.columns)
_CREATED = _CLICK_COLUMNS.index("created_at")
_UTM = _CLICK_COLUMNS.index("utm")


@dataclass(slots=True)
class PendingClick:
    """A click not yet written: the attributes of Click, plus what the flush still has to derive."""

    id: str
    link_id: int
    offer_id: int
    partner_id: int
    created_at: dt.datetime
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    utm: dict[str, str] | None = None
    referrer: str | None = None
    country: str | None = None
    device: str | None = None
    ip: str | None = None
    visitor: str | None = None
    is_unique: bool = False
    is_bot: bool = False
    fallback_reason: str | None = None
    #: Not stored: the user agent, the trusted country header and the method, read at flush.
    agent: str | None = None
    country_header: str | None = None
    head: bool = False
    enriched: bool = False

    @property
    def billable(self) -> bool:
        """Return whether the click may be paid as CPC (see Click.billable)."""
        return self.is_unique and not self.is_bot and self.fallback_reason is None

    def row(self) -> dict[str, Any]:
        """Return the clicks-table row."""
        return dict(zip(_CLICK_COLUMNS, _ROW(self), strict=True))


#: The clicks-table values of a PendingClick, in column order (one C call).
_ROW = operator.attrgetter(*_CLICK_COLUMNS)


def _sqlite_time(value: dt.datetime) -> str:
    # The format SQLAlchemy's SQLite DateTime writes and reads: naive UTC with microseconds.
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.isoformat(sep=" ", timespec="microseconds")[:26]


@lru_cache(maxsize=1024)
def _json(items: tuple[tuple[str, str], ...]) -> str:
    # Campaigns repeat the same utm values click after click.
    return json.dumps(dict(items))


def _utm_json(utm: dict[str, str] | None) -> str | None:
    return _json(tuple(utm.items())) if utm else None


def _insert_clicks(session: Session, clicks: list[PendingClick]) -> None:
    """Insert click rows with the driver's bulk path: COPY on PostgreSQL, executemany on SQLite."""
    # Straight to the driver: SQLAlchemy's per-row parameter processing would cost more than the
    # insert itself, and this runs in the web process, beside the requests.
    raw, postgres = _raw(session)
    columns = ", ".join(_CLICK_COLUMNS)
    if postgres:
        with raw.cursor() as cursor, cursor.copy(f"COPY clicks ({columns}) FROM STDIN") as copy:
            for i, click in enumerate(clicks, 1):
                if i % _YIELD_EVERY == 0:
                    _let_requests_run()
                row = list(_ROW(click))
                row[_UTM] = _utm_json(click.utm)
                copy.write_row(row)
        return
    # Multi-row INSERTs rather than executemany: sqlite3 releases the GIL around every statement
    # step, and a step per row would hand the GIL back and forth with request threads per row.
    values: list[Any] = []
    for i, click in enumerate(clicks, 1):
        if i % _YIELD_EVERY == 0:
            _let_requests_run()
        row = list(_ROW(click))
        row[_CREATED] = _sqlite_time(click.created_at)
        row[_UTM] = _utm_json(click.utm)
        values.extend(row)
    width = len(_CLICK_COLUMNS)
    one = "(" + ", ".join("?" * width) + ")"
    cursor = raw.cursor()
    try:
        for start in range(0, len(clicks), _SQLITE_ROWS):
            count = min(_SQLITE_ROWS, len(clicks) - start)
            cursor.execute(
                f"INSERT INTO clicks ({columns}) VALUES {', '.join([one] * count)}",  # noqa: S608 - our columns
                values[start * width : (start + count) * width],
            )
    finally:
        cursor.close()


def _raw(session: Session) -> tuple[Any, bool]:
    """Return the session's driver connection and whether it is PostgreSQL."""
    connection = session.connection()
    return connection.connection.driver_connection, connection.dialect.name == "postgresql"


def _claim_windows(session: Session, rows: list[tuple[int, str, dt.datetime]]) -> set[tuple[int, str]]:
    """Insert uniqueness windows that do not exist yet; return the (link, visitor) keys inserted."""
    # One statement for the whole batch, straight to the driver: compiling a many-row INSERT in
    # SQLAlchemy costs more than the database's work.
    raw, postgres = _raw(session)
    claimed: set[tuple[int, str]] = set()
    cursor = raw.cursor()
    try:
        if postgres:
            cursor.execute(
                "INSERT INTO click_visitors (link_id, visitor, window_start)"
                " SELECT * FROM unnest(%s::int[], %s::text[], %s::timestamptz[])"
                " ON CONFLICT DO NOTHING RETURNING link_id, visitor",
                ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]),
            )
            claimed.update((link_id, visitor) for link_id, visitor in cursor.fetchall())
            return claimed
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            cursor.execute(
                "INSERT INTO click_visitors (link_id, visitor, window_start) VALUES "  # noqa: S608 - placeholders only
                + ", ".join(["(?, ?, ?)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING link_id, visitor",
                [value for link_id, visitor, at in chunk for value in (link_id, visitor, _sqlite_time(at))],
            )
            claimed.update((link_id, visitor) for link_id, visitor in cursor.fetchall())
        return claimed
    finally:
        cursor.close()


def _read_windows(session: Session, keys: list[tuple[int, str]]) -> list[tuple[int, str, dt.datetime]]:
    """Return the existing uniqueness windows of (link, visitor) keys."""
    raw, postgres = _raw(session)
    found: list[tuple[int, str, dt.datetime]] = []
    cursor = raw.cursor()
    try:
        if postgres:
            cursor.execute(
                "SELECT link_id, visitor, window_start FROM click_visitors"
                " WHERE (link_id, visitor) IN (SELECT * FROM unnest(%s::int[], %s::text[]))",
                ([k[0] for k in keys], [k[1] for k in keys]),
            )
            return [(link_id, visitor, at.astimezone(dt.UTC)) for link_id, visitor, at in cursor.fetchall()]
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            cursor.execute(
                "SELECT link_id, visitor, window_start FROM click_visitors"  # noqa: S608 - placeholders only
                " WHERE (link_id, visitor) IN (VALUES " + ", ".join(["(?, ?)"] * len(chunk)) + ")",
                [value for key in chunk for value in key],
            )
            found.extend(
                (link_id, visitor, dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC))
                for link_id, visitor, at in cursor.fetchall()
            )
        return found
    finally:
        cursor.close()


class ClickWriter:
    """The buffer of one process's clicks and impressions for one database, and its flusher."""

    def __init__(
        self,
        database: Database,
        *,
        hasher: VisitorHasher,
        countries: CountryResolver,
        background: bool = True,
        interval: float = 0.1,
        batch: int = 500,
        max_pending: int = 200_000,
        shutdown_wait: float = 10.0,
    ) -> None:
        self.database = database
        self._hasher = hasher
        self._countries = countries
        #: False: nothing is written until flush() is called (tests bound to one transaction).
        self.background = background
        self.interval = interval
        self.batch = batch
        self.max_pending = max_pending
        #: How long a clean shutdown keeps retrying a flush the database does not take (seconds).
        self.shutdown_wait = shutdown_wait
        #: Clicks dropped because the buffer was full; rows refused by the database (dead letters).
        self.dropped = 0
        self.refused = 0
        self._pending: dict[str, PendingClick] = {}
        self._inflight: dict[str, PendingClick] = {}
        self._impressions: Counter[tuple[int, int, int, dt.date]] = Counter()
        #: Uniqueness windows this process has seen, so a flood needs no query: a window only ever
        #: moves forward, so a click inside a known one is certainly not unique.
        self._windows: dict[tuple[int, str], dt.datetime] = {}
        self._reset_process()
        _register(self)

    def _reset_process(self) -> None:
        # Locks and threads do not survive fork (gunicorn --preload): make new ones per process.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- request path --------------------------------------------------------------------------

    def add(self, click: PendingClick) -> None:
        """Queue a click for writing (never touches the database)."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            if len(self._pending) >= self.max_pending:
                self.dropped += 1
                if self.dropped % 1000 == 1:
                    log.error("click buffer full (database unreachable?): %d clicks dropped", self.dropped)
                return
            self._pending[click.id] = click
            size = len(self._pending)
        if self.background:
            if self._thread is None:
                self._start()
            if size >= self.batch:
                self._wake.set()

    def add_impression(self, link_id: int, offer_id: int, partner_id: int, day: dt.date) -> None:
        """Count one impression of a link on a UTC day."""
        if self._pid != os.getpid():
            self._after_fork()
        with self._lock:
            self._impressions[(link_id, offer_id, partner_id, day)] += 1
        if self.background and self._thread is None:
            self._start()

    def find(self, click_id: str) -> PendingClick | None:
        """Return a click of this process that is not yet written, or None."""
        return self._pending.get(click_id) or self._inflight.get(click_id)

    def pending_count(self) -> int:
        """Return how many clicks wait to be written."""
        return len(self._pending) + len(self._inflight)

    # ---- flushing ------------------------------------------------------------------------------

    def _after_fork(self) -> None:
        # The parent's buffer is the parent's to write.
        self._pending = {}
        self._inflight = {}
        self._impressions = Counter()
        self._reset_process()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="click-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self.flush()
                delay = self.interval
            except Exception as error:  # noqa: BLE001 - logged by outage.log_failure
                outage.log_failure(
                    log, "writing clicks failed; they stay buffered and are retried", error, what="click flushes failed"
                )
                delay = min(delay * 2, 5.0)

    def flush(self) -> int:
        """Write every buffered click and impression now; return how many clicks were written.

        A row the database refuses (network.deadletters.isolate) is kept as a dead letter and the
        rest is written; any other failure puts everything not yet written back, to be retried.
        """
        with self._flush_lock:
            with self._lock:
                clicks, self._pending = self._pending, {}
                impressions, self._impressions = self._impressions, Counter()
                self._inflight = clicks
            if not clicks and not impressions:
                return 0
            #: Written or refused: what is not put back when a retry is due.
            done: set[str] = set()
            counted: set[tuple[int, int, int, dt.date]] = set()
            refused = 0
            try:
                for i, click in enumerate(clicks.values(), 1):
                    self.enrich(click)
                    if i % _YIELD_EVERY == 0:
                        _let_requests_run()
                try:
                    self._write(list(clicks.values()), impressions)
                    done.update(clicks)
                    counted.update(impressions)
                except Exception as error:
                    if not isolate.refused(error):
                        raise
                    refused = self._isolate(list(clicks.values()), impressions, done, counted)
            except BaseException:
                with self._lock:
                    # Put back what is neither written nor refused, ahead of newer ones, to be retried.
                    left = {key: click for key, click in clicks.items() if key not in done}
                    left.update(self._pending)
                    self._pending = left
                    for key in counted:
                        del impressions[key]
                    impressions.update(self._impressions)
                    self._impressions = impressions
                raise
            finally:
                self._inflight = {}
            return len(clicks) - refused

    def _write(self, clicks: list[PendingClick], impressions: Counter[tuple[int, int, int, dt.date]]) -> None:
        """Write clicks and impression counts in one transaction and commit it (or raise, writing nothing)."""
        learned = {}
        with self.database.session() as session:
            if clicks:
                learned = self._decide_unique(session, clicks)
                _insert_clicks(session, clicks)
            if impressions:
                self._count_impressions(session, impressions)
            session.commit()
        # Only what is committed may spare later queries.
        if len(self._windows) > 100_000:
            self._windows.clear()
        self._windows.update(learned)

    def _isolate(
        self,
        clicks: list[PendingClick],
        impressions: Counter[tuple[int, int, int, dt.date]],
        done: set[str],
        counted: set[tuple[int, int, int, dt.date]],
    ) -> int:
        """Write the rows the database takes, in halves around the ones it refuses, kept as dead letters.

        Return how many clicks were refused.
        """
        letters: list[tuple[str, Any]] = []
        refused_clicks: list[tuple[str, Any]] = []

        def write_clicks(part: Sequence[PendingClick]) -> None:
            self._write(list(part), Counter())
            done.update(click.id for click in part)

        def refuse_click(click: PendingClick, error: BaseException) -> None:
            done.add(click.id)
            row = click.row()
            row.pop("ip")  # the raw IP is kept only for the fraud window, never in a dead letter
            refused_clicks.append((isolate.describe(error), row))

        def write_counts(part: Sequence[tuple[tuple[int, int, int, dt.date], int]]) -> None:
            self._write([], Counter(dict(part)))
            counted.update(key for key, _n in part)

        def refuse_count(item: tuple[tuple[int, int, int, dt.date], int], error: BaseException) -> None:
            counted.add(item[0])
            (link_id, offer_id, partner_id, day), count = item
            row = {"link_id": link_id, "offer_id": offer_id, "partner_id": partner_id, "day": day, "count": count}
            letters.append((isolate.describe(error), row))

        try:
            if clicks:
                isolate.isolate(clicks, write_clicks, refuse_click)
            if impressions:
                isolate.isolate(sorted(impressions.items()), write_counts, refuse_count)
        finally:
            self.refused += len(refused_clicks) + len(letters)
            isolate.keep(self.database, "clicks", refused_clicks)
            isolate.keep(self.database, "impressions", letters)
        return len(refused_clicks)

    def close(self) -> None:
        """Stop the flusher thread and write what is left, retrying for up to `shutdown_wait` seconds."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=5)
        if self._pid != os.getpid():
            return
        deadline = time.monotonic() + self.shutdown_wait
        delay = 0.05
        while True:
            try:
                self.flush()
                return
            except Exception:
                if time.monotonic() + delay > deadline:
                    log.error(
                        "could not write %d buffered clicks at shutdown (the database is unreachable): they are lost",
                        self.pending_count(),
                    )
                    raise
                log.warning("writing clicks at shutdown failed; retrying in %.1f s", delay, exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def enrich(self, click: PendingClick) -> PendingClick:
        """Fill in device, bot flag, visitor hash and country from what the request carried."""
        if click.enriched:
            return click
        device, bot = classify_agent(click.agent)
        if click.device is None:
            click.device = device
        click.is_bot = bot or click.head
        click.visitor = self._hasher(click.ip, click.agent)
        if click.country is None and self._countries.configured:
            click.country = self._countries.resolve(click.country_header, click.ip)
        click.enriched = True
        return click

    def _decide_unique(self, session: Session, clicks: list[PendingClick]) -> dict[tuple[int, str], dt.datetime]:
        # Bots and fallback clicks are never unique (so never billable). Of the others, the first
        # per visitor and link claims the window row; claiming is a conditional write, so two
        # processes flushing at once cannot both count a visitor as new.
        first: dict[tuple[int, str], PendingClick] = {}
        windows = self._windows
        for click in sorted(clicks, key=lambda c: c.created_at):
            click.is_unique = False
            if click.is_bot or click.fallback_reason is not None or click.visitor is None:
                continue
            key = (click.link_id, click.visitor)
            known = windows.get(key)
            if known is not None and known > click.created_at - UNIQUE_WINDOW:
                continue
            first.setdefault(key, click)
        learned: dict[tuple[int, str], dt.datetime] = {}
        if not first:
            return learned
        keys = list(first)
        claimed = _claim_windows(session, [(k[0], k[1], first[k].created_at) for k in keys])
        rest = [k for k in keys if k not in claimed]
        if rest:
            existing = _read_windows(session, rest)
            for link_id, visitor, window_start in existing:
                click = first[(link_id, visitor)]
                if window_start > click.created_at - UNIQUE_WINDOW:
                    learned[(link_id, visitor)] = window_start
                    continue
                moved = session.execute(
                    update(ClickVisitor)
                    .where(
                        ClickVisitor.link_id == link_id,
                        ClickVisitor.visitor == visitor,
                        ClickVisitor.window_start == window_start,
                    )
                    .values(window_start=click.created_at)
                    .execution_options(synchronize_session=False)
                )
                if moved.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.add((link_id, visitor))
        for key in claimed:
            first[key].is_unique = True
            learned[key] = first[key].created_at
        return learned

    def _count_impressions(self, session: Session, impressions: Counter[tuple[int, int, int, dt.date]]) -> None:
        items = sorted(impressions.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            stmt = insert_for(session.get_bind().dialect.name)(ImpressionCount).values(
                [
                    {"link_id": link, "offer_id": offer, "partner_id": partner, "day": day, "count": n}
                    for (link, offer, partner, day), n in chunk
                ]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["link_id", "day"], set_={"count": ImpressionCount.count + stmt.excluded["count"]}
            )
            session.execute(stmt)

    def preview(self, session: Session, click: PendingClick) -> PendingClick:
        """Return a copy of a pending click with its flags as the next flush will most likely set them."""
        copy = dataclasses.replace(click)
        self.enrich(copy)
        if copy.is_bot or copy.fallback_reason is not None:
            copy.is_unique = False
            return copy
        window = session.get(ClickVisitor, (copy.link_id, copy.visitor))
        earlier = any(
            other.link_id == copy.link_id
            and other.created_at < copy.created_at
            and other.fallback_reason is None
            and not other.head
            and self.enrich(other).visitor == copy.visitor
            and not other.is_bot
            for other in list(self._pending.values()) + list(self._inflight.values())
        )
        copy.is_unique = not earlier and (window is None or window.window_start <= copy.created_at - UNIQUE_WINDOW)
        return copy


# ---- the process's writers -------------------------------------------------------------------------

_live: weakref.WeakSet[ClickWriter] = weakref.WeakSet()
_registry_lock = threading.Lock()


def _register(writer: ClickWriter) -> None:
    with _registry_lock:
        if not writer.background:
            # Tests build one app per test, each bound to a transaction that is then rolled back:
            # only the newest such writer is live, so an older test's leftovers are never written.
            for other in list(_live):
                if not other.background:
                    _live.discard(other)
        _live.add(writer)


def live_writers() -> Iterable[ClickWriter]:
    """Return the writers of this process."""
    with _registry_lock:
        return list(_live)


def buffered_click(session: Session, click_id: str) -> PendingClick | None:
    """Return a click this process has not written yet, as its next flush will most likely write it."""
    for writer in live_writers():
        pending = writer.find(click_id)
        if pending is not None:
            return writer.preview(session, pending)
    return None


def flush_all() -> int:
    """Write every buffered click of this process; return how many were written."""
    return sum(writer.flush() for writer in live_writers())


@atexit.register
def _flush_at_exit() -> None:
    for writer in live_writers():
        if writer.background:
            try:
                writer.close()
            except Exception:
                log.exception("could not write buffered clicks at exit")
