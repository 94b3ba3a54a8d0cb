"""Click rows and impression counts, buffered in memory and written in batches off the request path.

A background thread flushes every `interval` seconds (0.1) or as soon as `batch` (500) clicks wait.
A flush computes what the request did not have to: device class and bot flag from the user agent,
the keyed visitor hash, the country (when no targeting needed it earlier) and the `unique` flag, then
writes every row in one transaction of its own (one multi-row statement per table): the flush is a
background job, so it commits like one. A clean shutdown flushes what is left: `close`, which the
tracking service calls at exit for its apps' writers (gunicorn workers run atexit when they exit).
The unique flag is decided in network/tracking/unique.py, the statements are in clicksql.py.

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

import dataclasses
import datetime as dt
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

import network.metrics as metrics
from network import outage
from network.clock import now_utc
from network.db import Database
from network.deadletters import isolate
from network.rollups import marks
from network.tracking import clicksql
from network.tracking.clicksql import YIELD_EVERY, Impressions, let_requests_run
from network.tracking.models import ClickVisitor
from network.tracking.pending import PendingClick
from network.tracking.rules import unique_call
from network.tracking.traffic import CountryResolver, VisitorHasher, classify_agent
from network.tracking.unique import UNIQUE_WINDOW, decide_unique

__all__ = ["ClickWriter", "PendingClick"]

log = logging.getLogger(__name__)

#: Seconds a process trusts the uniqueness windows it learned (see ClickWriter._write).
WINDOWS_TRUSTED = 600.0


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
        self._impressions: Impressions = Counter()
        #: Uniqueness windows this process has seen, so a flood needs no query: a window only ever
        #: moves forward, so a click inside a known one is certainly not unique.
        self._windows: dict[tuple[int, str], dt.datetime] = {}
        self._windows_since = time.monotonic()
        self._reset_process()

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
                metrics.CLICKS_DROPPED.inc()
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

    @metrics.counts_flushes
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
                    if i % YIELD_EVERY == 0:
                        let_requests_run()
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

    def _write(self, clicks: list[PendingClick], impressions: Impressions) -> None:
        """Write clicks and impression counts in one transaction, the flush job's own (or raise, writing nothing)."""
        learned = {}
        if time.monotonic() - self._windows_since > WINDOWS_TRUSTED:
            # Another process may move a window back (an older click it wrote late), so what this
            # one learned is trusted for a while only.
            self._windows.clear()
            self._windows_since = time.monotonic()
        with self.database.session_scope() as session:
            if clicks:
                learned = decide_unique(session, clicks, self._windows)
                clicksql.insert_clicks(session, clicks)
                marks.mark_clicks(session, [click.created_at for click in clicks], now=now_utc())
            if impressions:
                clicksql.count_impressions(session, impressions)
        # Only what is committed may spare later queries.
        if len(self._windows) > 100_000:
            self._windows.clear()
        self._windows.update(learned)

    def _isolate(
        self,
        clicks: list[PendingClick],
        impressions: Impressions,
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
        copy.is_unique = not earlier and (
            window is None
            or unique_call(copy.created_at, window.window_start, window.previous_start, UNIQUE_WINDOW).unique
        )
        return copy
