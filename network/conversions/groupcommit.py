"""The group commit: a process's concurrent postbacks recorded together, in one transaction.

Recorded alone, a conversion costs a transaction of its own: a connection, BEGIN, a dozen
statements, COMMIT. Under load most of that is per transaction, not per conversion. So the first
postback to arrive leads: it takes the plans queued meanwhile (its own first), records them all in
one transaction by the one recording path (recording.record), commits, and wakes the others with
their answers; the next one queued then leads. No answer leaves before the commit that holds its
conversion, and an idle process records each postback at once (a batch of one). On a SQLite file
the leader first waits in line with the other processes' leaders (Database.writers_queue), and only
then takes the queued plans: those that arrived while it waited join its batch instead of waiting
for the next.

This component owns its transaction by design (`record_committed` opens and commits it): the
requests whose plans it records have ended their own before they queue.

When a batch fails (a deadlock, a receiver's error), it is rolled back and each of its postbacks is
recorded alone by its request, so a bad one fails by itself. When the database refused a value of
the batch (a refusal: network/deadletters/isolate.py), the batch is recorded again in halves until
each refused postback stands alone; the others are recorded together as before. A refused postback
is recorded once more with its partner postbacks written one by one (a refused outbox row alone is
then kept as a dead letter, and the conversion recorded); if it is still refused, it is kept as a
dead letter and answered 400 `not_storable` (its log line says so), so the brand does not retry it
for ever.

API: `GroupCommit` (`submit(plan)`), `record_committed`, `read_ahead`, `refuse`, `keep_refused`,
`Outcome`, `MAX_BATCH`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from network import metrics, outage
from network import text as text_rule
from network.conversions import recording, rules
from network.conversions.attribution import Plan, click_rows
from network.conversions.intake import Answer, Trace, log_row
from network.db import Database, pipelined
from network.deadletters import isolate
from network.errors import DomainError, ValidationError

log = logging.getLogger(__name__)

#: Plans one transaction records at most (a bound on its length, not a target).
MAX_BATCH = 64

#: A plan's outcome: its answer, its refusal (409, or 400 not_storable), or None when its request
#: must record it alone.
Outcome = Answer | DomainError | None


class _Slot:
    """A plan waiting in the queue, and what became of it."""

    __slots__ = ("done", "lead", "outcome", "plan", "wake")

    def __init__(self, plan: Plan) -> None:
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
    """Records plans of concurrent requests in shared transactions; see the module's docstring.

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
        record: Callable[[list[Plan]], list[Outcome]],
        *,
        max_batch: int = MAX_BATCH,
        gate: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
        ahead: Callable[[list[Plan]], None] | None = None,
        gather: Callable[[], None] | None = None,
        refuse: Callable[[Plan, BaseException], Outcome] | None = None,
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

    def submit(self, plan: Plan) -> Outcome:
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
            metrics.postback_batch(batch)
            self.largest = max(self.largest, len(batch))
            for slot, outcome in zip(batch, outcomes, strict=True):
                slot.outcome, slot.done = outcome, True
                if not slot.lead:  # the leader's own thread is awake (and a new leader was woken once)
                    slot.wake.release()

    def record(self, plans: list[Plan]) -> list[Outcome]:
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

    def _around_refused(self, plans: list[Plan], error: BaseException) -> list[Outcome]:
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


def record_committed(database: Database, plans: list[Plan], *, outbox_one_by_one: bool = False) -> list[Outcome]:
    """Record plans in one transaction of their own and commit it; return their outcomes.

    The caller waits in the database's writers' line (GroupCommit's gate) first.
    `outbox_one_by_one`: partner postbacks are written one by one, a refused one kept as a dead letter.
    """
    with database.session_scope(writer=True) as session:
        if outbox_one_by_one:
            session.info[isolate.ONE_BY_ONE] = True
        # On PostgreSQL one pipeline from BEGIN to COMMIT: a statement whose answer is needed ends
        # a round trip (the clicks, the new conversions' ids, the caps' room, the partners' URLs),
        # and carries the ones sent before it that need none; the rest and the COMMIT end it.
        with pipelined(session):
            results = recording.record(session, plans)
            _commit_in_pipeline(session)
    # Only now: a batch that failed leaves the traces as the requests made them.
    for plan, (_outcome, fields) in zip(plans, results, strict=True):
        for name, value in fields.items():
            setattr(plan.trace, name, value)
    return [outcome for outcome, _fields in results]


def _commit_in_pipeline(session: Session) -> None:
    """Send the COMMIT as the pipeline's last statement (PostgreSQL); session_scope's commit then has nothing to do.

    The driver's commit() would end the round trip first and leave the pipeline's end a round trip
    of its own. Not inside a transaction of the caller's (a SAVEPOINT's, as tests run): that one commits.
    """
    connection = session.connection()
    if connection.dialect.name != "postgresql" or connection.in_nested_transaction():
        return
    session.flush()  # nothing of the ORM's may be left for the session's commit
    driver: Any = connection.connection.driver_connection
    driver.cursor().execute("COMMIT", prepare=False)  # never prepared: a COMMIT cannot be


def read_ahead(database: Database, plans: list[Plan]) -> None:
    """Read the plans' clicks and judge the plans on them before their batch waits in the writers' line.

    So the line (SQLite's one writer at a time, across processes) is held for less. A click's row
    does not change once written (but for its raw IP, which judging does not read), so what is read
    outside the batch's transaction stands. A click not found (still in a writer's buffer, maybe this
    process's) is left to the batch, which reads it again and looks in the buffer.
    """
    todo = [plan for plan in plans if plan.judged is None and plan.ref is not None]
    if not todo:
        return
    session = database.read_session()  # on SQLite a read takes no write lock
    try:
        rows = click_rows(session, todo)
    finally:
        session.close()
    for plan in todo:
        row = rows.get(plan.click_id)
        if row is not None:
            plan.judged = rules.judge(plan, row)


def keep_refused(database: Database, trace: Trace, now: Any, error: BaseException, **facts: Any) -> str:
    """Keep a postback the database refused as a dead letter, make its log line storable; return the reason."""
    reason = isolate.describe(error)
    isolate.keep(database, "postbacks", [(reason, {**log_row(trace, at=now), **facts})])
    # The refused value may be in the log line too: what the request writes of it must be storable.
    trace.click_id = text_rule.storable(trace.click_id, 512, free_text=True) if trace.click_id else trace.click_id
    trace.txn_id = text_rule.storable(trace.txn_id, 255, free_text=True) if trace.txn_id else trace.txn_id
    trace.remote_addr = (
        text_rule.storable(trace.remote_addr, 45, free_text=True) if trace.remote_addr else trace.remote_addr
    )
    return reason


def refuse(database: Database, plan: Plan, error: BaseException) -> Outcome:
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
