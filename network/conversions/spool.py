"""Postback log lines of a database outage, kept in the process and written once the database is back.

A postback refused because the database is unavailable is answered 503 with Retry-After (the
brand's system retries it), and its log line cannot be written then. The line waits here, in
memory: the same fields the postback log keeps (never the token or the signature), with status
503 and reason `database_unavailable`. A background thread of the process tries to write the
waiting lines every few seconds and stops once they are written; it is started by the first line
kept, so no request pays for any of it while the database answers.

Bounded: at most MAX_LINES lines wait (a line is at most a few KB: 50 parameters of 512
characters). Past the bound a refused postback's line is not kept: the postback itself was
still answered 503, so the brand retries it, but the log will not show that attempt; the number
of lines not kept is logged at ERROR when the waiting ones are written. Lines still waiting when
the process stops (the database never came back before it) are lost with it, and said so in the log.

A line refused before the postback was authenticated has no brand yet (the brand's log shows only
its own lines). Its brand is found when it is written: the brand of the offer it names, or of its
click, and only when the postback carried that brand's token (kept here as a SHA-256 digest, in
memory only, to compare with).
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import threading
from typing import Any

from sqlalchemy import select

from network import outage
from network.accounts.models import Brand
from network.config import Settings
from network.conversions import intake
from network.db import Database
from network.offers.models import Offer
from network.tracking.clickid import ClickIdCodec
from network.tracking.models import Link

log = logging.getLogger(__name__)

#: Lines kept at most, per process.
MAX_LINES = 10_000
#: Seconds between two tries to write the waiting lines.
RETRY_EVERY = 2.0
#: The reason a refused postback's log line gives.
REASON = "database_unavailable"


@dataclasses.dataclass(frozen=True, slots=True)
class _Line:
    row: dict[str, Any]
    #: SHA-256 of the token the postback carried (None: no token), to find its brand later.
    token_digest: bytes | None


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Spool:
    """The postback log lines of one process that wait for the database."""

    def __init__(self, database: Database, settings: Settings, *, max_lines: int | None = None) -> None:
        self._database = database
        self._secret = settings.secret_key
        self._max_lines = MAX_LINES if max_lines is None else max_lines
        self._lock = threading.Lock()
        self._lines: list[_Line] = []
        self._dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._exit_hooked = False
        #: Lines written since the process started, and lines not kept (for tests and operators).
        self.written = 0
        self.dropped_total = 0

    def __len__(self) -> int:
        return len(self._lines)

    def keep(self, trace: intake.Trace, *, at: dt.datetime, token: str | None) -> None:
        """Keep the log line of a postback refused because the database is unavailable."""
        trace.http_status, trace.reason = 503, REASON
        trace.conversion_id = trace.status = None
        trace.duplicate = False
        line = _Line(intake.log_row(trace, at=at), _digest(token) if token else None)
        with self._lock:
            if len(self._lines) >= self._max_lines:
                self._dropped += 1
                self.dropped_total += 1
                return
            self._lines.append(line)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._retry, name="postback-log-spool", daemon=True)
                self._thread.start()
            if not self._exit_hooked:
                self._exit_hooked = True
                atexit.register(self.close)

    def write(self) -> int:
        """Write the waiting lines in one transaction; return how many. Raise when the database is still away."""
        with self._lock:
            lines, self._lines = self._lines, []
            dropped, self._dropped = self._dropped, 0
        if not lines:
            return 0
        try:
            with self._database.session_scope(writer=True) as session:
                rows = [self._with_brand(session, line) for line in lines]
                intake.LOG_LINES.run(session, rows)
        except BaseException:
            with self._lock:
                self._lines[:0] = lines
                self._dropped += dropped
            raise
        self.written += len(lines)
        log.warning("the database answers again: wrote %d postback log lines of the outage", len(lines))
        if dropped:
            log.error(
                "%d postback log lines of the outage were not kept (more than %d waited)", dropped, self._max_lines
            )
        return len(lines)

    def close(self, *, timeout: float = 2.0) -> None:
        """Stop the retry thread; try once more to write what waits, and say what is lost."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        try:
            self.write()
        except Exception:  # noqa: BLE001 - the process is stopping; only the count is worth saying
            log.error("%d postback log lines of a database outage are lost: the database did not answer", len(self))

    def _retry(self) -> None:
        while not self._stop.wait(RETRY_EVERY):
            try:
                self.write()
            except Exception as error:
                if not outage.is_unavailable(error):
                    log.exception("could not write the postback log lines of a database outage")
                continue
            with self._lock:
                if not self._lines:
                    self._thread = None
                    return

    def _with_brand(self, session: Any, line: _Line) -> dict[str, Any]:
        row = line.row
        if row["brand_id"] is not None or line.token_digest is None:
            return row
        query = None
        if row["offer_id"] is not None:
            query = select(Brand.id, Brand.postback_token).join(Offer, Offer.brand_id == Brand.id)
            query = query.where(Offer.id == row["offer_id"])
        elif row["click_id"]:
            ref = ClickIdCodec(self._secret).verify(row["click_id"])
            if ref is not None:
                query = select(Brand.id, Brand.postback_token).join(Offer, Offer.brand_id == Brand.id)
                query = query.join(Link, Link.offer_id == Offer.id).where(Link.id == ref.link_id)
        found = session.execute(query).first() if query is not None else None
        if found is not None and hmac.compare_digest(_digest(found.postback_token), line.token_digest):
            return {**row, "brand_id": found.id}
        return row
