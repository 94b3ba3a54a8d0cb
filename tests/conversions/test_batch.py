"""Postbacks recorded together (network/conversions/groupcommit.py): one transaction, one-by-one outcomes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from network.conversions import groupcommit, service
from network.conversions.groupcommit import GroupCommit
from network.conversions.models import Conversion, PostbackLog
from network.conversions.signals import status_changed
from network.db import Database
from network.deliveries.models import PostbackDelivery
from network.offers.models import CapCounter
from network.payouts.models import LedgerEntry
from tests.conversions.conftest import CPL, NOW, SECRET, make_click, make_link
from tests.conversions.invariants import check_invariants
from tests.factories import make_brand, make_offer, make_partner

HOUR = dt.timedelta(hours=1)


def _wait_for(condition: Callable[[], bool], *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


class _Gate:
    """A record function that holds the first batch until `released`, and can fail the second before it writes."""

    def __init__(self, database: Any, *, fail_second: bool) -> None:
        self.database = database
        self.fail_second = fail_second
        self.released = threading.Event()
        self.calls: list[int] = []

    def __call__(self, plans: list[Any]) -> list[Any]:
        self.calls.append(len(plans))
        if len(self.calls) == 1:
            assert self.released.wait(timeout=30)
        if len(self.calls) == 2 and self.fail_second:
            raise OperationalError("INSERT", {}, Exception("the database went away"))
        return groupcommit.record_committed(self.database, plans)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(None, id="recorded-together"),
        pytest.param("before", id="fails-before-writing", marks=pytest.mark.breaks_batches),
        pytest.param("midway", id="fails-half-written", marks=pytest.mark.breaks_batches),
    ],
)
def test_a_batch_answers_every_postback_as_if_recorded_one_by_one(committed_app, committed_db, frozen_clock, failure):
    frozen_clock(NOW)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        # Told of every conversion: a replay must not tell it twice (RELIABILITY 7). Nothing is sent here.
        partner.postback_url = "https://tracker.partner.example/pb?c={click_id}&s={status}"
        open_offer = make_offer(session, brand=brand, events=[CPL])
        capped_offer = make_offer(
            session, brand=brand, events=[CPL], caps=[{"metric": "conversions", "period": "day", "limit": 3}]
        )
        open_link = make_link(session, offer=open_offer, partner=partner)
        capped_link = make_link(session, offer=capped_offer, partner=partner)
        token = brand.postback_token
        first, twice, earlier, changed = (make_click(session, open_link, at=NOW - HOUR) for _ in range(4))
        capped = [make_click(session, capped_link, at=NOW - HOUR) for _ in range(5)]

    def send(params: dict[str, str]) -> tuple[int, Any]:
        r = committed_app.test_client().get("/postback", query_string={"event": "lead", "token": token, **params})
        return r.status_code, r.get_json()

    # Made before the batch: a replay and a replay with another amount.
    before = [send({"click_id": earlier, "txn_id": "E-1", "amount": "9.00"}),
              send({"click_id": changed, "txn_id": "C-1", "amount": "9.00"})]  # fmt: skip
    assert [body["status"] for _, body in before] == ["approved", "approved"]

    gate = _Gate(committed_db, fail_second=failure == "before")
    recorder = GroupCommit(gate)
    broken: list[int] = []

    def break_once(_sender: Any, **kwargs: Any) -> None:
        # Called per change inside the batch, after its keys, caps and rows were written.
        if failure == "midway" and not broken:
            broken.append(kwargs["conversion"].id)
            raise RuntimeError("a receiver broke half-way through the batch")

    status_changed.connect(break_once)
    committed_app.extensions["network.conversions.recorder"] = recorder
    together = [
        {"click_id": twice, "txn_id": "T-1", "amount": "5.00"},
        {"click_id": twice, "txn_id": "T-1", "amount": "5.00"},
        {"click_id": earlier, "txn_id": "E-1", "amount": "9.00"},
        {"click_id": changed, "txn_id": "C-1", "amount": "7.00"},
        *({"click_id": click} for click in capped),
    ]
    try:
        with ThreadPoolExecutor(len(together) + 1) as pool:
            leader = pool.submit(send, {"click_id": first, "txn_id": "F-1"})
            _wait_for(lambda: len(gate.calls) == 1)  # the leader's batch of one is being recorded
            followers = [pool.submit(send, params) for params in together]
            _wait_for(lambda: recorder.waiting() == len(together))
            gate.released.set()
            answers = [f.result(timeout=60) for f in followers]
            assert leader.result(timeout=60)[1]["status"] == "approved"
    finally:
        status_changed.disconnect(break_once)

    assert gate.calls[:2] == [1, len(together)]
    assert recorder.failures == (0 if failure is None else 1)
    assert len(broken) == (1 if failure == "midway" else 0)
    # The same txn_id twice in one batch: one conversion, the second answers it as a duplicate.
    (s1, a1), (s2, a2) = answers[0], answers[1]
    assert s1 == s2 == 200 and a1["conversion_id"] == a2["conversion_id"]
    assert sorted([a1["duplicate"], a2["duplicate"]]) == [False, True]
    # A replay of a conversion made before: its id, duplicate; another amount: 409, unchanged.
    assert answers[2] == (200, {**before[0][1], "duplicate": True})
    assert answers[3][0] == 409 and answers[3][1]["code"] == "txn_id_amount_conflict"
    # The cap of 3 holds inside the batch.
    assert Counter((b["status"], b["reason"]) for _, b in answers[4:]) == {
        ("approved", None): 3,
        ("rejected", "cap_reached"): 2,
    }
    with committed_db.session_scope() as session:
        rows = session.scalars(select(Conversion)).all()
        assert Counter(row.status for row in rows) == {"approved": 2 + 1 + 1 + 3, "rejected": 2}
        assert session.get(Conversion, before[1][1]["conversion_id"]).amount_minor == 900
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 7
        assert session.scalar(select(CapCounter.used)) == 3
        lines = session.scalars(select(PostbackLog)).all()
        assert len(lines) == 2 + 1 + len(together)
        assert Counter(line.http_status for line in lines) == {200: 2 + 1 + len(together) - 1, 409: 1}
        # The in-batch replay, the replay of the earlier one, and the 409 (it names the conversion it hit).
        assert sum(line.duplicate for line in lines) == 3
        # One partner postback per conversion made, none for a replay; the half-written batch left none.
        made = Counter(d.conversion_id for d in session.scalars(select(PostbackDelivery)))
        assert sorted(made) == sorted(row.id for row in rows) and set(made.values()) == {1}
        check_invariants(session, SECRET)


def test_leaders_take_turns_and_every_plan_is_answered_once():
    running = threading.Lock()
    seen: list[int] = []

    def record(plans: list[Any]) -> list[Any]:
        assert running.acquire(blocking=False), "two batches at once"
        try:
            time.sleep(0.002)
            seen.extend(plans)
            return [f"answer {plan}" for plan in plans]
        finally:
            running.release()

    recorder = GroupCommit(record, max_batch=3)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(recorder.submit, range(200)))
    assert answers == [f"answer {n}" for n in range(200)]
    assert sorted(seen) == list(range(200))
    assert recorder.batches < 200 and recorder.largest == 3
    assert recorder.waiting() == 0


def _submit_in_thread(recorder: GroupCommit, plan: Any) -> Callable[[], Any]:
    """Submit `plan` from a thread of its own; return how to get its outcome (failing, not hanging, if it never comes)."""
    outcome: list[Any] = []
    thread = threading.Thread(target=lambda: outcome.append(recorder.submit(plan)), daemon=True)
    thread.start()

    def result() -> Any:
        thread.join(timeout=20)
        assert not thread.is_alive(), f"plan {plan!r} was never answered"
        return outcome[0]

    return result


def test_plans_queued_while_the_leader_waits_in_line_join_its_batch():
    line = threading.Lock()  # held by another process's leader, writing
    calls: list[list[Any]] = []

    def record(plans: list[Any]) -> list[Any]:
        assert line.locked(), "recorded outside the line"
        calls.append(list(plans))
        return [f"answer {plan}" for plan in plans]

    @contextmanager
    def gate() -> Iterator[None]:
        with line:
            yield

    recorder = GroupCommit(record, gate=gate)
    line.acquire()
    try:
        answers = [_submit_in_thread(recorder, "a")]
        _wait_for(lambda: recorder.waiting() == 1)
        answers += [_submit_in_thread(recorder, plan) for plan in ("b", "c")]
        # The leader's own plan is still queued: it takes the batch only once in line.
        _wait_for(lambda: recorder.waiting() == 3, timeout=5)
    finally:
        line.release()
    assert [answer() for answer in answers] == ["answer a", "answer b", "answer c"]
    assert calls == [["a", "b", "c"]]
    assert not line.locked()


def test_the_leader_gathers_the_requests_already_received_before_it_takes_its_batch():
    calls: list[list[Any]] = []
    others: list[Callable[[], Any]] = []

    def record(plans: list[Any]) -> list[Any]:
        calls.append(list(plans))
        return [f"answer {plan}" for plan in plans]

    def gather() -> None:
        # As a turn of gevent's hub: the requests received meanwhile reach the queue.
        if not others:
            others.extend(_submit_in_thread(recorder, plan) for plan in ("b", "c"))
            _wait_for(lambda: recorder.waiting() == 3)

    recorder = GroupCommit(record, gather=gather)
    first = _submit_in_thread(recorder, "a")
    assert first() == "answer a"
    assert [answer() for answer in others] == ["answer b", "answer c"]
    assert calls == [["a", "b", "c"]]


def test_a_line_that_cannot_be_entered_or_left_does_not_stop_the_recording(caplog):
    def no_entry() -> Any:
        raise OSError("no room for the line's lock file")

    recorder = GroupCommit(lambda plans: [f"answer {plan}" for plan in plans], gate=no_entry)
    assert recorder.submit("a") == "answer a"
    assert "recording the batch without the line" in caplog.text

    @contextmanager
    def no_exit() -> Iterator[None]:
        yield
        raise OSError("the line's lock could not be released")

    # The batch is committed before the line is left: its answer stands.
    recorder = GroupCommit(lambda plans: [f"answer {plan}" for plan in plans], gate=no_exit)
    assert recorder.submit("b") == "answer b"
    assert "could not leave the line" in caplog.text
    assert recorder.failures == 0


class _Stop(BaseException):
    """Like the interpreter's own exits: not an Exception."""


def test_a_leader_stopped_while_waiting_in_line_leaves_no_dead_lead():
    entries: list[str] = []

    @contextmanager
    def gate() -> Iterator[None]:
        entries.append("in")
        if len(entries) == 1:
            raise _Stop
        yield

    recorder = GroupCommit(lambda plans: [f"answer {plan}" for plan in plans], gate=gate)
    with pytest.raises(_Stop):
        recorder.submit("a")
    # Its plan is not recorded and its slot is gone: the next postback leads and is answered.
    assert recorder.waiting() == 0
    assert _submit_in_thread(recorder, "b")() == "answer b"


def test_sqlite_postbacks_are_recorded_in_the_writers_line(committed_app, committed_db, frozen_clock, dialect):
    if dialect != "sqlite":
        pytest.skip("PostgreSQL needs no line")
    frozen_clock(NOW)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        link = make_link(session, offer=make_offer(session, brand=brand, events=[CPL]), partner=make_partner(session))
        click, token = make_click(session, link, at=NOW - HOUR), brand.postback_token
    answers: list[Any] = []

    def send() -> None:
        r = committed_app.test_client().get(
            "/postback", query_string={"event": "lead", "click_id": click, "token": token}
        )
        answers.append(r.get_json())

    other = Database(committed_db.url)  # another process's place in the line
    try:
        with other.writers_queue():
            thread = threading.Thread(target=send, daemon=True)
            thread.start()
            thread.join(timeout=0.5)
            assert not answers, "recorded while another process's batch held the line"
        thread.join(timeout=20)
    finally:
        other.dispose()
    assert [a["status"] for a in answers] == ["approved"]


def test_a_batch_that_raises_is_answered_none_and_the_next_still_records():
    calls: list[list[Any]] = []

    def record(plans: list[Any]) -> list[Any]:
        calls.append(plans)
        if len(calls) == 1:
            raise RuntimeError("deadlock detected")
        return ["ok"] * len(plans)

    recorder = GroupCommit(record)
    assert recorder.submit("a") is None  # the caller then records it alone
    assert recorder.submit("b") == "ok"
    assert recorder.failures == 1


def test_the_leader_reads_ahead_the_queued_plans_before_it_waits_in_line(caplog):
    events: list[Any] = []

    @contextmanager
    def line() -> Iterator[None]:
        events.append("in line")
        yield
        events.append("left")

    def record(plans: list[Any]) -> list[Any]:
        events.append(("recorded", list(plans)))
        return [f"answer {plan}" for plan in plans]

    recorder = GroupCommit(record, gate=line, ahead=lambda plans: events.append(("ahead", list(plans))))
    assert recorder.submit("p1") == "answer p1"
    assert events == [("ahead", ["p1"]), "in line", ("recorded", ["p1"]), "left"]

    def down(_plans: list[Any]) -> None:
        raise OperationalError("SELECT", {}, Exception("the database went away"))

    events.clear()
    recorder = GroupCommit(record, gate=line, ahead=down)
    # Reading ahead only spares the line some work: the batch is recorded all the same.
    assert recorder.submit("p2") == "answer p2"
    assert events == ["in line", ("recorded", ["p2"]), "left"]
    assert "could not read ahead of a batch" in caplog.text


def test_plans_judged_ahead_are_recorded_as_the_batch_would_judge_them(committed_app, committed_db, frozen_clock):
    frozen_clock(NOW)
    with committed_db.session_scope() as session:
        brand = make_brand(session)
        partner = make_partner(session)
        offer = make_offer(session, brand=brand, events=[CPL], countries=["US"], min_seconds=60)
        link = make_link(session, offer=offer, partner=partner)
        token = brand.postback_token
        clicks = [
            make_click(session, link, at=NOW - HOUR, country="US"),
            make_click(session, link, at=NOW - HOUR, country="DE"),  # outside the offer's countries
            make_click(session, link, at=NOW - dt.timedelta(seconds=5), country="US"),  # too fast
            make_click(session, link, at=NOW - HOUR, country="US", is_bot=True),  # held for review
            make_click(None, link, at=NOW - HOUR),  # not written (yet): no row to read ahead
        ]
    plans: list[Any] = []
    recorder = committed_app.extensions["network.conversions.recorder"]
    # The requests' plans, kept instead of recorded (each answered as nothing).
    recorder.submit = lambda plan: plans.append(plan) or service.Answer(None, None, None)
    for tag in ("ahead", "in-batch"):
        for n, click in enumerate(clicks):
            query = {"click_id": click, "event": "lead", "token": token, "txn_id": f"{tag}-{n}"}
            assert committed_app.test_client().get("/postback", query_string=query).status_code == 200
    ahead, in_batch = plans[: len(clicks)], plans[len(clicks) :]

    groupcommit.read_ahead(committed_db, ahead)

    assert [plan.judged is not None for plan in ahead] == [True, True, True, True, False]
    assert [plan.judged is None for plan in in_batch] == [True] * len(clicks)
    judged_ahead = groupcommit.record_committed(committed_db, ahead)
    judged_in_batch = groupcommit.record_committed(committed_db, in_batch)
    verdicts = [(a.status, a.reason) for a in judged_ahead]
    assert verdicts == [(a.status, a.reason) for a in judged_in_batch]
    assert verdicts[:4] == [("approved", None), ("rejected", "geo_mismatch"), ("rejected", "too_fast"),
                            ("pending", None)]  # fmt: skip
    with committed_db.session_scope() as session:
        stored = {c.txn_id: (c.status, c.reason, c.flags) for c in session.scalars(select(Conversion))}
        assert [stored[f"ahead-{n}"] for n in range(len(clicks))] == [
            stored[f"in-batch-{n}"] for n in range(len(clicks))
        ]
        check_invariants(session, SECRET)


def test_the_apps_recorder_reads_ahead_only_where_there_is_a_line(committed_app, dialect):
    ahead = committed_app.extensions["network.conversions.recorder"]._ahead
    if dialect == "sqlite":
        assert ahead is not None and ahead.func is groupcommit.read_ahead
    else:  # PostgreSQL: no line to shorten, and the read would be a round trip of its own
        assert ahead is None


def test_the_apps_leaders_gather_only_under_gevent(committed_app):
    # The test process is not monkey-patched: threads gather nothing (their line, on SQLite, does).
    assert committed_app.extensions["network.conversions.recorder"]._gather is None
