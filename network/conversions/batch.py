"""Postbacks recorded together: a process's concurrent postbacks share one transaction (group commit).

Recorded alone, a conversion costs a transaction of its own: a connection, BEGIN, a dozen
statements, COMMIT. Under load most of that is per transaction, not per conversion. So the first
postback to arrive leads: it takes the plans queued meanwhile (its own first), records them all in
one transaction with a few multi-row statements, commits, and wakes the others with their answers;
the next one queued then leads. No answer leaves before the commit that holds its conversion, and
an idle process records each postback at once (a batch of one). On a SQLite file the leader first
waits in line with the other processes' leaders (Database.writers_queue), and only then takes the
queued plans: those that arrived while it waited join its batch instead of waiting for the next.

The outcome is the one-by-one outcome. Dedupe keys are claimed by one INSERT ... ON CONFLICT DO
NOTHING in key order (so two batches never wait on each other in a cycle); the first plan of a key
wins and later ones answer it as duplicates. Caps are decided in arrival order under the
counters' row locks (offers.caps.consume_many). When a batch fails (a deadlock, a receiver's
error), it is rolled back and each of its postbacks is recorded alone by the path that records one,
so a bad one fails by itself. When the database refused a value of the batch (a refusal:
network/deadletters/isolate.py), the batch is recorded again in halves until each refused postback
stands alone; the others are recorded together as before. A refused postback is recorded once more
with its partner postbacks written one by one (a refused outbox row alone is then kept as a dead
letter, and the conversion recorded); if it is still refused, it is kept as a dead letter and
answered 400 `not_storable` (its log line says so), so the brand does not retry it for ever.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Session

from network import outage
from network.conversions import service
from network.conversions.context import read_caps
from network.conversions.models import Conversion
from network.conversions.signals import Change, send_many
from network.db import ByCount, Database, pipelined
from network.deadletters import isolate
from network.errors import DomainError, ValidationError
from network.offers import caps as cap_counters
from network.tracking.models import Click
from network.tracking.writer import buffered_click

log = logging.getLogger(__name__)

#: Plans one transaction records at most (a bound on its length, not a target).
MAX_BATCH = 64

#: A plan's outcome: its answer, its refusal (409), or None when it must be recorded alone.
Outcome = service.Answer | DomainError | None


class _Slot:
    """A plan waiting in the queue, and what became of it."""

    __slots__ = ("done", "lead", "outcome", "plan", "wake")

    def __init__(self, plan: service.Plan) -> None:
        self.plan = plan
        self.outcome: Outcome = None
        self.done = False
        #: This slot's thread records the next batch.
        self.lead = False
        #: Held until the slot's thread is woken: its plan recorded, or made the leader. (A lock
        #: handed over costs a fraction of an Event's set and wait.)
        self.wake = threading.Lock()
        self.wake.acquire()


class GroupCommit:
    """Records plans of concurrent requests in shared transactions; a `service.Recorder`.

    `gate`: entered by the leader before it takes each batch, and left after recording it (a line
    shared with other processes' leaders, such as Database.writers_queue).
    `ahead`: called by the leader with the plans queued before it waits in the gate's line, to do
    outside the line what may be (read_ahead); an error there only leaves it to the recording.
    `refuse`: called with a plan the database refused when recorded alone, and its error; returns
    its outcome (None: the request records it alone).
    `gather`: called by the leader first, to let requests already received reach the queue and
    join its batch (under gevent one turn of the hub: network.green.give_way). A batch's cost is
    mostly per transaction, so fewer, larger batches cost less CPU per postback.
    """

    def __init__(
        self,
        record: Callable[[list[service.Plan]], list[Outcome]],
        *,
        max_batch: int = MAX_BATCH,
        gate: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        ahead: Callable[[list[service.Plan]], None] | None = None,
        gather: Callable[[], None] | None = None,
        refuse: Callable[[service.Plan, BaseException], Outcome] | None = None,
    ) -> None:
        self._record = record
        self._refuse = refuse
        self._max_batch = max_batch
        self._gate = gate
        self._ahead = ahead
        self._gather = gather
        self._lock = threading.Lock()
        self._queue: deque[_Slot] = deque()
        self._leading = False
        #: Batches recorded, the largest one, and batches that failed (for tests and benchmarks).
        self.batches = 0
        self.largest = 0
        self.failures = 0

    def submit(self, plan: service.Plan) -> Outcome:
        """Return the plan's outcome once the transaction holding it has committed (or failed)."""
        slot = _Slot(plan)
        with self._lock:
            self._queue.append(slot)
            if not self._leading:
                self._leading = slot.lead = True
        if not slot.lead:
            slot.wake.acquire()  # recorded by a leader, or made the leader
        if not slot.lead:
            return slot.outcome
        try:
            # The leader's slot is first in the queue (the queue was empty, or it was handed the lead),
            # so the batch it takes holds its own plan.
            if self._gather is not None:
                self._gather()
            if self._ahead is not None:
                self._prepare()
            line = contextlib.ExitStack()
            self._wait_in_line(line)
            try:
                with self._lock:
                    batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
                self._run(batch)
            finally:
                self._leave_line(line)
        finally:
            with self._lock:
                if not slot.done and slot in self._queue:
                    # Interrupted before taking its batch (while waiting in line): its plan is not
                    # recorded, and its slot must not be handed the lead it already had.
                    self._queue.remove(slot)
                if self._queue:
                    following = self._queue[0]
                    following.lead = True
                    following.wake.release()
                else:
                    self._leading = False
        return slot.outcome

    def _prepare(self) -> None:
        assert self._ahead is not None
        with self._lock:
            queued = [slot.plan for slot in self._queue]
        try:
            self._ahead(queued)
        except Exception:
            log.warning("could not read ahead of a batch; it reads in the line instead", exc_info=True)

    def _wait_in_line(self, line: contextlib.ExitStack) -> None:
        try:
            line.enter_context(self._gate())
        except Exception:
            # The line only spares the database's own waiting for its lock: record without it.
            log.warning("could not wait in line to write; recording the batch without the line", exc_info=True)

    @staticmethod
    def _leave_line(line: contextlib.ExitStack) -> None:
        try:
            line.close()
        except Exception:
            # The batch is committed: its postbacks are answered as such all the same.
            log.warning("could not leave the line to write", exc_info=True)

    def waiting(self) -> int:
        """Return how many plans wait for a leader to take them."""
        with self._lock:
            return len(self._queue)

    def _run(self, batch: list[_Slot]) -> None:
        outcomes: list[Outcome] = [None] * len(batch)
        try:
            outcomes = self.record([slot.plan for slot in batch])
        finally:
            self.batches += 1
            self.largest = max(self.largest, len(batch))
            for slot, outcome in zip(batch, outcomes, strict=True):
                slot.outcome, slot.done = outcome, True
                if not slot.lead:  # the leader's own thread is awake (and a new leader was woken once)
                    slot.wake.release()

    def record(self, plans: list[service.Plan]) -> list[Outcome]:
        """Record plans together and return their outcomes; None for each one to record alone.

        A batch the database refused a value of is recorded in halves around the refused plans.
        """
        try:
            return self._record(plans)
        except Exception as error:  # noqa: BLE001 - logged by outage.log_failure, or isolated
            self.failures += 1
            if not isolate.refused(error):
                # Recorded alone instead: each fails, or not, by itself.
                outage.log_failure(
                    log,
                    f"a batch of {len(plans)} postbacks failed; recording them one by one",
                    error,
                    what="postback batches failed",
                )
                return [None] * len(plans)
            log.warning(
                "the database refused a value in a batch of %d postbacks: %s", len(plans), isolate.describe(error)
            )
            return self._around_refused(plans, error)

    def _around_refused(self, plans: list[service.Plan], error: BaseException) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}

        def write(part: Sequence[int]) -> None:
            outcomes.update(zip(part, self._record([plans[i] for i in part]), strict=True))

        def refuse(i: int, refusal: BaseException) -> None:
            outcomes[i] = self._refuse(plans[i], refusal) if self._refuse is not None else None

        try:
            isolate.isolate(range(len(plans)), write, refuse, error=error)
        except Exception:
            # Not a refusal (the database went away meanwhile): what is left is recorded alone.
            log.warning("recording around a refused postback failed; the rest are recorded one by one", exc_info=True)
        return [outcomes.get(i) for i in range(len(plans))]


class _NoRoom(Exception):
    """A cap counter taken optimistically had no room (or no row yet): decide conversion by conversion."""


def record_committed(
    database: Database, plans: list[service.Plan], *, outbox_one_by_one: bool = False
) -> list[Outcome]:
    """Record plans in one transaction of their own and commit it; return their outcomes.

    The caller waits in the database's writers' line (GroupCommit's gate) first.
    `outbox_one_by_one`: partner postbacks are written one by one, a refused one kept as a dead letter.
    """
    try:
        results = _in_transaction(database, plans, optimistic=True, outbox_one_by_one=outbox_one_by_one)
    except _NoRoom:
        results = _in_transaction(database, plans, optimistic=False, outbox_one_by_one=outbox_one_by_one)
    # Only now: a batch that failed leaves the traces as the requests made them.
    for plan, (_outcome, fields) in zip(plans, results, strict=True):
        for name, value in fields.items():
            setattr(plan.trace, name, value)
    return [outcome for outcome, _fields in results]


def read_ahead(database: Database, plans: list[service.Plan]) -> None:
    """Read the plans' clicks and judge the plans on them before their batch waits in the writers' line.

    So the line (SQLite's one writer at a time, across processes) is held for less. A click's row
    does not change once written (but for its raw IP, which judging does not read), so what is read
    outside the batch's transaction stands. A click not found (still in a writer's buffer, maybe this
    process's) is left to the batch, which reads it again and looks in the buffer.
    """
    todo = [plan for plan in plans if plan.judged is None]
    if not todo:
        return
    session = database.read_session()  # on SQLite a read takes no write lock
    try:
        rows = _click_rows(session, sorted({plan.click_id for plan in todo}))
    finally:
        session.close()
    for plan in todo:
        row = rows.get(plan.click_id)
        if row is not None:
            plan.judged = service.judge(plan, row)


def _in_transaction(
    database: Database, plans: list[service.Plan], *, optimistic: bool, outbox_one_by_one: bool = False
) -> list[tuple[Outcome, dict[str, Any]]]:
    with database.session_scope(writer=True) as session:
        if outbox_one_by_one:
            session.info[isolate.ONE_BY_ONE] = True
        return record_many(session, plans, optimistic=optimistic, commit=True)


def keep_refused(database: Database, trace: service.Trace, now: Any, error: BaseException, **facts: Any) -> str:
    """Keep a postback the database refused as a dead letter, make its log line storable; return the reason."""
    reason = isolate.describe(error)
    isolate.keep(database, "postbacks", [(reason, {**service.log_row(trace, at=now), **facts})])
    # The refused value may be in the log line too: what the request writes of it must be storable.
    trace.click_id = isolate.storable(trace.click_id, 512) if trace.click_id else trace.click_id
    trace.txn_id = isolate.storable(trace.txn_id, 255) if trace.txn_id else trace.txn_id
    trace.remote_addr = isolate.storable(trace.remote_addr, 45) if trace.remote_addr else trace.remote_addr
    return reason


def refuse(database: Database, plan: service.Plan, error: BaseException) -> Outcome:
    """Return the outcome of a plan the database refused when recorded alone (GroupCommit's `refuse`).

    Recorded once more with its partner postbacks one by one (one of them may be what was refused);
    if still refused, kept as a dead letter and answered 400, its log line made storable.
    """
    try:
        return record_committed(database, [plan], outbox_one_by_one=True)[0]
    except Exception as again:
        if not isolate.refused(again):
            log.warning("recording a refused postback alone failed; its request records it", exc_info=True)
            return None
        error = again
    reason = keep_refused(database, plan.trace, plan.now, error, event=plan.data.event,
                          amount_minor=plan.amount_minor, currency=plan.currency, link_id=plan.link.link_id)  # fmt: skip
    return ValidationError(
        f"the database refused a value of this postback ({reason.split(':')[0]}); it is kept for the network's"
        " operator, do not send it again as it is",
        code="not_storable",
    )


# ---- recording many ------------------------------------------------------------------------------

_CLICK_COLUMNS = (Click.id, Click.country, Click.is_bot, Click.is_unique)
#: The plans' clicks, by how many: `WHERE id IN ($1, ... $n)` (an array parameter costs psycopg more
#: to send, and SQLite would need a statement per click).
_CLICKS = ByCount(
    lambda count, _dialect: select(*_CLICK_COLUMNS).where(
        Click.id.in_([bindparam(f"id_{n}", type_=String) for n in range(count)])
    )
)


def _key(values: dict[str, Any]) -> tuple[Any, ...]:
    """Return a conversion's dedupe key: by offer, event and txn_id, or by click and event."""
    if values["txn_id"] is not None:
        return ("t", values["offer_id"], values["event_id"], values["txn_id"])
    return ("c", values["click_id"], values["event_id"])


def _click_rows(session: Session, ids: Sequence[str]) -> dict[str, _ClickRow]:
    """Return the rows of the clicks written among `ids`, by id."""
    found = _CLICKS(len(ids)).all(session, {f"id_{n}": click_id for n, click_id in enumerate(ids)})
    # Driver values: SQLite's booleans are 0 and 1.
    return {row[0]: _ClickRow(row[1], _bool(row[2]), _bool(row[3])) for row in found}


def _clicks(session: Session, plans: Sequence[service.Plan]) -> dict[str, Any]:
    """Return the clicks of the plans not judged ahead: their rows, or their records still in this process's buffer."""
    ids = sorted({plan.click_id for plan in plans if plan.judged is None})
    if not ids:
        return {}
    clicks: dict[str, Any] = dict(_click_rows(session, ids))
    for click_id in ids:
        # As tracking.service.get_click: a click this process has not written yet is in its buffer.
        pending = buffered_click(session, click_id)
        if pending is not None:
            clicks[click_id] = pending
    return clicks


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


@dataclass(frozen=True, slots=True)
class _ClickRow:
    country: str | None
    is_bot: bool | None
    is_unique: bool | None


def record_many(
    session: Session, plans: Sequence[service.Plan], *, optimistic: bool = False, commit: bool = False
) -> list[tuple[Outcome, dict[str, Any]]]:
    """Record plans in the session's transaction, as if one by one in order.

    Return each plan's outcome (its answer, or the 409 of a txn_id replayed with another amount)
    and the fields of its trace (applied once committed); its log line is written here, but for a
    409's, which the request writes after rolling back as for any refusal.

    `optimistic`: take each cap counter's whole share at the end, against the caps the links'
    contexts know, and raise _NoRoom when one has no room (the caller rolls back and records the
    batch again without it); otherwise lock the counters and decide conversion by conversion.
    `commit`: on PostgreSQL, send the COMMIT in the last round trip, after the cap counters (whose
    shares that do not fit fail the transaction instead); the session's own commit then has
    nothing left to do.
    """
    connection = session.connection()
    # Not inside a transaction of the caller's (a SAVEPOINT's, as tests run): that one commits.
    commit_here = commit and connection.dialect.name == "postgresql" and not connection.in_nested_transaction()
    try:
        # On PostgreSQL one pipeline from BEGIN to COMMIT: a statement whose answer is needed ends
        # a round trip (the clicks, the claimed keys, the partners' URLs), and carries the ones
        # sent before it that need none (the ledger's entries); the rest and the COMMIT end it.
        with pipelined(session):
            results, fitted = _record_many(session, plans, optimistic=optimistic)
            if commit_here:
                session.flush()  # nothing of the ORM's may be left for the session's commit
                # As a statement of the pipeline: the driver's commit() would end the round trip
                # here and leave the pipeline's end a round trip of its own. (Never prepared: a
                # COMMIT cannot be.)
                driver: Any = connection.connection.driver_connection
                driver.cursor().execute("COMMIT", prepare=False)
    except Exception as error:
        if cap_counters.no_room(error):
            raise _NoRoom from error
        raise
    if fitted is not None and not fitted():  # answered at the pipeline's end
        raise _NoRoom
    return results


def _record_many(
    session: Session, plans: Sequence[service.Plan], *, optimistic: bool
) -> tuple[list[tuple[Outcome, dict[str, Any]]], Callable[[], bool] | None]:
    clicks = _clicks(session, plans)
    judged = [plan.judged or service.judge(plan, clicks.get(plan.click_id)) for plan in plans]
    keys = [_key(values) for _facts, values in judged]

    # Claim the dedupe keys, in key order (so two batches never wait on each other in a cycle); the
    # first plan of each key that was free is its winner.
    order = sorted(range(len(plans)), key=keys.__getitem__)
    claimed = {
        _key({"offer_id": offer_id, "event_id": event_id, "txn_id": txn_id, "click_id": click_id}): new_id
        for new_id, offer_id, event_id, txn_id, click_id in service.CLAIM.run(session, [judged[i][1] for i in order])
    }
    winners: dict[tuple[Any, ...], int] = {}
    conversions: dict[int, Conversion] = {}
    for i in order:
        if keys[i] in claimed and keys[i] not in winners:
            winners[keys[i]] = i
            conversions[i] = service.inserted(claimed[keys[i]], judged[i][1])

    # Caps, for the winners every other check accepted.
    accepted = sorted(i for i, c in conversions.items() if c.reason is None)
    claims: dict[int, cap_counters.Claim] = {}
    if optimistic:
        # The links' caps; each counter's share is taken last (below), against the cap's limit now.
        claims = {i: _claim(conversions[i], plans[i], plans[i].link.caps) for i in accepted if plans[i].link.caps}
    elif accepted:
        # In arrival order, under the counters' row locks, with the caps as they are now.
        caps = read_caps(session, sorted({conversions[i].offer_id for i in accepted}))
        claims = {
            i: _claim(conversions[i], plans[i], caps[conversions[i].offer_id])
            for i in accepted
            if conversions[i].offer_id in caps
        }
        for i, fits in zip(claims, cap_counters.consume_many(session, list(claims.values())), strict=True):
            if not fits:
                service.reject(session.connection(), conversions[i], "cap_reached")

    results: list[tuple[Outcome, dict[str, Any]]] = []
    history: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    changes: list[Change] = []
    earlier: dict[tuple[Any, ...], Any] = {}
    for i, plan in enumerate(plans):
        conversion = conversions.get(i)
        if conversion is not None:
            fields = {"conversion_id": conversion.id, "status": conversion.status, "reason": conversion.reason}
            actor = service.creator(plan.trace.source)
            history.append(
                service.history_row(conversion.id, None, conversion.status, conversion.reason, actor=actor, at=plan.now)
            )
            changes.append(Change(conversion, None, conversion.status, plan.now, conversion.reason))
            outcome: Outcome = service.Answer(conversion.id, conversion.status, conversion.reason)
        else:
            # The conversion holding the key: this batch's winner, or one read once per key.
            if keys[i] in winners:
                first: Any = conversions[winners[keys[i]]]
            elif keys[i] in earlier:
                first = earlier[keys[i]]
            else:
                first = earlier[keys[i]] = service.holder(session, judged[i][1])
            outcome, fields = service.replay(judged[i][1], first)
        if not isinstance(outcome, DomainError):
            lines.append({**service.log_row(plan.trace, at=plan.now), **fields})
        results.append((outcome, fields))
    # Optimistically, every cap had room: the ledger and outbox rows are written before the counters
    # are taken, and all of it is undone when one had none.
    send_many(session, changes)
    service.HISTORY_LINES.run(session, history)
    service.LOG_LINES.run(session, lines)
    # Last, so the counters' row locks (which every batch of the offer queues on) are held for as
    # little as the rest of this round trip and the commit.
    fitted = cap_counters.take_together(session, list(claims.values())) if optimistic and claims else None
    return results, fitted


def _claim(conversion: Conversion, plan: service.Plan, caps: Sequence[Any]) -> cap_counters.Claim:
    return cap_counters.Claim(caps, conversion.partner_id, plan.now, conversion.payout_minor)
