"""The delivery job: send due partner postbacks after commit, outside any transaction, at most once each.

Each row is leased in its own short transaction (a conditional UPDATE that sets its lease, after
SELECT ... FOR UPDATE SKIP LOCKED on PostgreSQL), sent with no transaction open, and its outcome
recorded by a second conditional UPDATE that only the run holding the lease can make. Two schedulers
running at once therefore never send the same row twice. A run killed between the send and the
record leaves the row to be sent again after its lease; the webhook-id stays the same, so the
partner can tell it is a repeat.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from network import netguard, text
from network.clock import now_utc
from network.config import Settings
from network.db import Database
from network.deadletters import isolate
from network.deliveries import rules, sender, service, targets
from network.deliveries.models import DeliveryStatus, PostbackAttempt, PostbackDelivery
from network.partners.models import Partner

log = logging.getLogger(__name__)

#: How long a run holds a leased row: far longer than one send may take (netguard's total
#: deadline is connect + read + 2 s), so a live run's lease never lapses mid-send.
LEASE = dt.timedelta(seconds=60)
#: Deliveries sent at once by one run; a slow partner then holds up one worker, not the queue.
WORKERS = 4


@dataclass(frozen=True)
class _Lease:
    """A row this run holds, and the request to send for it."""

    delivery_id: int
    token: str
    number: int
    partner_id: int
    target: str
    template: str
    request: sender.Request


#: Returned by a lease that needed no send (stopped or passed over): look for the next row.
_AGAIN = _Lease(0, "", 0, 0, "", "", sender.Request("GET", ""))


class _Run:
    """One call of deliver_due: leases, sends and records until the limit or the queue runs out."""

    def __init__(self, database: Database, transport: sender.Transport, now: dt.datetime | None, limit: int) -> None:
        self.database = database
        self.transport = transport
        self.limit = limit
        self._base = now
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.taken = 0
        self.sent = 0
        #: Rows passed over in this run (their host just timed out); left for the next run.
        self.skipped: set[int] = set()
        #: Hosts that timed out or refused in this run: their other rows wait for the next run,
        #: so one dead endpoint costs one timeout per run, not one per queued delivery.
        self.bad_hosts: set[str] = set()
        self.errors: list[BaseException] = []

    def now(self) -> dt.datetime:
        """Return the run's clock: the given `now` advanced by the time spent, or the real time."""
        if self._base is None:
            return now_utc()
        return self._base + dt.timedelta(seconds=time.monotonic() - self._started)

    def _reserve(self) -> bool:
        with self._lock:
            if self.taken >= self.limit:
                return False
            self.taken += 1
            return True

    def _unreserve(self) -> None:
        with self._lock:
            self.taken -= 1

    def work(self) -> None:
        """Deliver rows until none is due or the run's limit is reached; keep the first error."""
        try:
            self._work()
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread by deliver_due
            with self._lock:
                self.errors.append(exc)

    def _work(self) -> None:
        while self._reserve():
            lease = self._lease()
            if lease is None:
                self._unreserve()
                return
            if lease is _AGAIN:
                self._unreserve()
                continue
            self._deliver(lease)

    def _lease(self) -> _Lease | None:
        """Lease the next due row; None when none is due, _AGAIN when this one needs no send."""
        with self.database.session_scope() as session:
            now = self.now()
            with self._lock:
                skipped = list(self.skipped)
                bad_hosts = set(self.bad_hosts)
            due = (
                PostbackDelivery.status == DeliveryStatus.PENDING.value,
                PostbackDelivery.next_attempt_at <= now,
                or_(PostbackDelivery.leased_until.is_(None), PostbackDelivery.leased_until < now),
            )
            query = select(PostbackDelivery).where(*due)
            if skipped:
                query = query.where(PostbackDelivery.id.not_in(skipped))
            # PostgreSQL: another run skips this row instead of waiting. SQLite has no row locks and
            # SQLAlchemy leaves the clause out there: its BEGIN IMMEDIATE serialises the runs.
            query = query.order_by(PostbackDelivery.next_attempt_at, PostbackDelivery.id).limit(1)
            query = query.with_for_update(skip_locked=True)
            delivery = session.scalars(query).one_or_none()
            if delivery is None:
                return None
            partner = session.get(Partner, delivery.partner_id)
            found = targets.resolve_target(session, partner, delivery.target) if partner is not None else None
            if found is None:
                self._stop(session, delivery, now, "the partner removed this postback URL")
                return _AGAIN
            template, method = found
            disabled = targets.find_disable(session, delivery.partner_id, delivery.target, template)
            if disabled is not None:
                self._stop(session, delivery, now, f"the URL is disabled: {disabled.reason}")
                return _AGAIN
            host = urlsplit(template).netloc.lower()
            if host in bad_hosts:
                with self._lock:
                    self.skipped.add(delivery.id)
                return _AGAIN
            if not delivery.subs_from_click:
                subs, from_click = service.click_subs(session, delivery.macros.get("click_id", ""), None)
                if from_click:
                    delivery.macros = {**delivery.macros, **subs}
                    delivery.subs_from_click = True
            try:
                request = sender.build(
                    template=template,
                    method=method,
                    macros=delivery.macros,
                    webhook_id=delivery.webhook_id,
                    secret=partner.postback_secret if partner is not None else None,
                    old_status=delivery.old_status,
                    event_at=delivery.event_at,
                )
            except netguard.UnsafeURL as exc:
                self._stop(session, delivery, now, f"the URL cannot be called: {exc}")
                return _AGAIN
            token = secrets.token_hex(16)
            leased = session.execute(
                update(PostbackDelivery)
                .where(PostbackDelivery.id == delivery.id, *due)
                .values(leased_until=now + LEASE, lease_token=token, attempts=PostbackDelivery.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if leased.rowcount != 1:  # type: ignore[attr-defined]
                # Another run took it between our read and our write (SQLite without row locks).
                with self._lock:
                    self.skipped.add(delivery.id)
                return _AGAIN
            return _Lease(
                delivery_id=delivery.id,
                token=token,
                number=delivery.attempts + 1,
                partner_id=delivery.partner_id,
                target=delivery.target,
                template=template,
                request=request,
            )

    def _stop(self, session: Session, delivery: PostbackDelivery, now: dt.datetime, why: str) -> None:
        """Fail a row that must not be sent any more, without an attempt."""
        delivery.status = DeliveryStatus.FAILED.value
        delivery.last_error = why
        delivery.leased_until = None
        delivery.lease_token = None
        delivery.updated_at = now
        log.info("postback delivery %s stopped: %s", delivery.id, why)

    def _deliver(self, lease: _Lease) -> None:
        """Send a leased row with no transaction open, then record what happened."""
        started_at = self.now()
        response = sender.send(lease.request, self.transport)
        url = lease.request.redacted_url
        with self._lock:
            self.sent += 1
            if response.error and response.error.startswith(("timeout", "connect")):
                self.bad_hosts.add(urlsplit(lease.template).netloc.lower())
        self._record(lease, response, started_at, url)

    def _record(self, lease: _Lease, response: netguard.Response, started_at: dt.datetime, url: str) -> None:
        excerpt = sender.excerpt(response.body)
        try:
            recorded, outcome = self._record_in(lease, response, started_at, url, excerpt, refusal=None)
        except Exception as error:
            if not isolate.refused(error):
                raise
            # A value of the attempt (the partner's answer, an error text) the database refused: the
            # attempt is kept as a dead letter, and the delivery's outcome recorded all the same.
            recorded, outcome = self._record_in(lease, response, started_at, url, excerpt, refusal=error)
        log.info(
            "postback delivery %s attempt %s: %s %s -> status=%s error=%s %dms => %s%s",
            lease.delivery_id,
            lease.number,
            lease.request.method,
            url,
            response.status,
            outcome.error,
            response.latency_ms,
            outcome.status,
            "" if recorded else " (lease lapsed: not recorded)",
        )

    def _record_in(
        self,
        lease: _Lease,
        response: netguard.Response,
        started_at: dt.datetime,
        url: str,
        excerpt: str | None,
        *,
        refusal: BaseException | None,
    ) -> tuple[bool, rules.Outcome]:
        """Record an attempt and the delivery's outcome in one transaction; return (recorded, outcome).

        `refusal`: the database refused the attempt before: it becomes a dead letter, and the
        delivery's texts are made storable.
        """
        with self.database.session_scope() as session:
            now = self.now()
            delivery = session.get(PostbackDelivery, lease.delivery_id)
            max_attempts = delivery.max_attempts if delivery is not None else lease.number
            outcome = rules.decide(
                status_code=response.status,
                error=response.error,
                headers=response.headers,
                attempts=lease.number,
                max_attempts=max_attempts,
                now=now,
            )
            error = outcome.error
            if refusal is not None:
                url = text.storable(url, 8192, free_text=False)
                error = text.storable(error, 8192, free_text=True) if error is not None else None
            values: dict[str, object] = {
                "status": outcome.status,
                "leased_until": None,
                "lease_token": None,
                "method": lease.request.method.lower(),
                "url": url,
                "last_status_code": response.status,
                "last_error": error,
                "updated_at": now,
            }
            if outcome.next_attempt_at is not None:
                values["next_attempt_at"] = outcome.next_attempt_at
            if outcome.status == DeliveryStatus.DELIVERED.value:
                values["delivered_at"] = now
            # Only the run holding the lease records an outcome: a lapsed lease changes nothing.
            result = session.execute(
                update(PostbackDelivery)
                .where(
                    PostbackDelivery.id == lease.delivery_id,
                    PostbackDelivery.lease_token == lease.token,
                    PostbackDelivery.status == DeliveryStatus.PENDING.value,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            recorded = result.rowcount == 1  # type: ignore[attr-defined]
            attempt = {
                "delivery_id": lease.delivery_id,
                "number": lease.number,
                "at": started_at,
                "method": lease.request.method.lower(),
                "url": url,
                "status_code": response.status,
                "latency_ms": round(response.latency_ms),
                "error": error,
                "address": response.address,
                "response_excerpt": excerpt,
                "recorded": recorded,
            }
            if refusal is None:
                session.add(PostbackAttempt(**attempt))
            else:
                isolate.keep_in(session, "delivery_log", isolate.describe(refusal), attempt)
            if recorded and outcome.disable:
                targets.disable_url(
                    session,
                    partner_id=lease.partner_id,
                    target=lease.target,
                    template=lease.template,
                    reason=f"answered 410 Gone to delivery {lease.delivery_id} at {now.isoformat()}",
                    delivery_id=lease.delivery_id,
                )
        return recorded, outcome


def deliver_due(
    database: Database,
    settings: Settings,
    *,
    now: dt.datetime | None = None,
    limit: int = 100,
    workers: int = WORKERS,
    transport: sender.Transport | None = None,
) -> int:
    """Send up to `limit` due partner postbacks and record each outcome; return the sends made.

    For the scheduler only, never a web request. Safe to run in several processes at once.
    """
    run = _Run(database, transport or sender.Transport.from_settings(settings), now, limit)
    threads = [threading.Thread(target=run.work, name=f"deliver-{i}", daemon=True) for i in range(max(workers, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if run.errors:
        raise run.errors[0]
    return run.sent
