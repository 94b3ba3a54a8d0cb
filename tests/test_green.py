"""psycopg's waits under gevent (network/green.py): through the hub only when the socket is not ready.

The generators here stand for psycopg's: they yield the Wait they need and are resumed with what is
ready. The waits run in greenlets of gevent's hub, which needs no monkey-patching; the last tests
check, in a process of their own, that the wait is installed exactly when gevent has patched.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gevent
import psycopg
import pytest
from psycopg import waiting
from sqlalchemy.engine import make_url

from network import green
from network.config import ROOT

R, W = int(waiting.Wait.R), int(waiting.Wait.W)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def never_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No turn given to the others for having been busy (so that only a real wait switches)."""
    monkeypatch.setattr(green, "MAX_BUSY_TIME", 3600.0)


def _reader(sock: socket.socket, seen: list[int]) -> Iterator[int]:
    """Wait until `sock` can be read; return what it holds (b"" once the peer closed)."""
    while True:
        ready = yield R
        seen.append(ready)
        if ready & R:
            return sock.recv(100)  # type: ignore[return-value]


def _run(gen: Any, sock: socket.socket, **kwargs: Any) -> tuple[Any, list[str]]:
    """Run `gen` with green.wait in a greenlet beside another that notes when it ran; return both."""
    order: list[str] = []
    # Spawned first, so it runs first: the other greenlet gets its turn only if the wait yields.
    result = gevent.spawn(lambda: (green.wait(gen, sock.fileno(), **kwargs), order.append("wait returned")))
    other = gevent.spawn(order.append, "other ran")
    try:
        value = result.get(timeout=10)[0]
    finally:
        other.kill()
    return value, order


def test_a_ready_socket_is_not_waited_for_through_the_hub(pair, never_busy):
    ours, _theirs = pair

    def writer() -> Iterator[int]:
        ready = yield W  # a freshly made socket has room to write
        return ready  # type: ignore[return-value]

    value, order = _run(writer(), ours)
    assert value == W
    # No switch to the hub before it returned: the other greenlet had no turn in between.
    assert order == ["wait returned", "other ran"]


def test_a_socket_not_ready_lets_other_greenlets_run_until_it_is(pair, never_busy):
    ours, theirs = pair
    seen: list[int] = []
    sender = gevent.spawn_later(0.05, theirs.sendall, b"answer")
    value, order = _run(_reader(ours, seen), ours, interval=5.0)
    sender.join()
    assert value == b"answer"
    assert order == ["other ran", "wait returned"]
    assert seen == [R]  # resumed once, when the answer had come


def test_each_interval_resumes_the_generator_with_nothing_ready(pair):
    ours, _theirs = pair
    seen: list[int] = []

    def patient() -> Iterator[int]:
        while len(seen) < 3:
            seen.append((yield R))
        return "gave up"  # type: ignore[return-value]

    value, _order = _run(patient(), ours, interval=0.01)
    assert value == "gave up"
    assert seen == [0, 0, 0]


def test_a_timeout_raises_psycopgs_wait_timeout(pair):
    ours, _theirs = pair

    def forever() -> Iterator[int]:
        while True:
            yield R

    with pytest.raises(psycopg.errors._WaitTimeout):
        gevent.spawn(green.wait, forever(), ours.fileno(), interval=0.01, timeout=0.05).get(timeout=10)


def test_a_callers_own_timeout_is_not_taken_for_the_interval(pair):
    ours, _theirs = pair

    def forever() -> Iterator[int]:
        while True:
            yield R

    def waited() -> None:
        with gevent.Timeout(0.05, TimeoutError):
            green.wait(forever(), ours.fileno(), interval=0.2)

    with pytest.raises(TimeoutError):
        gevent.spawn(waited).get(timeout=10)


def test_a_closed_peer_resumes_the_reader(pair, never_busy):
    ours, theirs = pair
    theirs.close()
    seen: list[int] = []
    value, _order = _run(_reader(ours, seen), ours)
    assert value == b""
    assert seen == [R]


def test_a_greenlet_never_blocked_still_gives_the_others_a_turn(pair, monkeypatch):
    ours, _theirs = pair
    monkeypatch.setattr(green, "MAX_BUSY_TIME", 0.0)

    def writer() -> Iterator[int]:
        yield W
        return "written"  # type: ignore[return-value]

    value, order = _run(writer(), ours)
    assert value == "written"
    assert order == ["other ran", "wait returned"]


def test_a_generator_done_at_once_returns_its_value(pair):
    ours, _theirs = pair

    def done() -> Iterator[int]:
        return "nothing to wait for"  # type: ignore[return-value]
        yield W  # pragma: no cover

    assert green.wait(done(), ours.fileno()) == "nothing to wait for"


def test_psycopg_queries_wait_for_the_server_while_other_greenlets_run(database_url, dialect, monkeypatch):
    if dialect != "postgresql":
        pytest.skip("psycopg's waits are PostgreSQL's")
    monkeypatch.setattr(waiting, "wait", green.wait)
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    order: list[str] = []

    def slow() -> list[Any]:
        with psycopg.connect(conninfo) as conn:
            rows = conn.execute("SELECT pg_sleep(0.2), 1").fetchall()
            with conn.pipeline():  # several statements, one round trip: the waits of pipeline mode
                cursors = [conn.execute("SELECT %s::int * 2", (n,)) for n in range(5)]
            order.append("query done")
            return rows + [c.fetchone() for c in cursors]

    def other() -> None:
        gevent.sleep(0.05)
        order.append("other ran")

    query, note = gevent.spawn(slow), gevent.spawn(other)
    rows = query.get(timeout=30)
    note.join()
    assert rows == [("", 1), (0,), (2,), (4,), (6,), (8,)]
    assert order == ["other ran", "query done"]


def test_give_way_lets_the_greenlets_that_can_run_go_first():
    order: list[str] = []

    def polite() -> None:
        green.give_way()
        order.append("polite")

    gevent.joinall([gevent.spawn(polite), gevent.spawn(order.append, "other")])
    assert order == ["other", "polite"]


_GATHER = """
from gevent import monkey

monkey.patch_all()
import json, sys
import gevent
from network import green
from network.conversions.groupcommit import GroupCommit

seen = []


def record(plans):
    seen.append(len(plans))
    gevent.sleep(0.01)  # the transaction's round trips: the others wait for its answer
    return [f"answer {plan}" for plan in plans]


recorder = GroupCommit(record, gather=green.give_way if sys.argv[1] == "give way" else None)
# The first request leads; three more were received and are ready to run.
submits = [gevent.spawn(recorder.submit, plan) for plan in "abcd"]
gevent.joinall(submits, timeout=10, raise_error=True)
print(json.dumps({"answers": [g.value for g in submits], "batches": seen}))
"""


@pytest.mark.parametrize(("gather", "batches"), [("give way", [4]), ("none", [1, 3])])
def test_a_leader_giving_way_takes_the_postbacks_its_worker_received_meanwhile(gather, batches):
    # In a process of its own: the group commit's locks are gevent's only once monkey-patched.
    done = subprocess.run(
        [sys.executable, "-c", _GATHER, gather], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    result = json.loads(done.stdout)
    assert result["answers"] == ["answer a", "answer b", "answer c", "answer d"]
    assert result["batches"] == batches


_CHECK = """
import sys
if sys.argv[1] == "patched":
    from gevent import monkey
    monkey.patch_all()
import psycopg.waiting
from network import green
from network.config import ROOT
from network.db import make_engine
before = psycopg.waiting.wait
make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # makes the engine; connects to nothing
from network.app import create_app
import os
os.environ.update(DATABASE_URL="sqlite:///" + sys.argv[2] + "/network.db", SECRET_KEY="s" * 32)
gather = create_app().extensions["network.conversions.recorder"]._gather
from network import serving
serving.start()  # as wsgi.py does
print(before.__name__, psycopg.waiting.wait is green.wait, gather is green.give_way)
"""


@pytest.mark.parametrize(("mode", "expected"), [("plain", "wait_c False False"), ("patched", "wait_poll True True")])
def test_psycopgs_wait_and_the_leaders_giving_way_are_installed_only_under_gevents_patching(mode, expected, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", _CHECK, mode, str(tmp_path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == expected


_HOOK = """
import sys
if sys.argv[1] == "patched":
    from gevent import monkey
    monkey.patch_all()
import gevent
from network import serving
if sys.argv[1] == "patched":
    serving.start()  # as wsgi.py does in a gevent worker
order = []


def served():
    serving.post_request(None, None, {}, None)  # gunicorn's call once a request is answered
    order.append("served")


if sys.argv[1] == "patched":
    gevent.joinall([gevent.spawn(served), gevent.spawn(order.append, "waiting connection")])
else:
    from gevent._hub_local import get_hub_if_exists

    served()
    order.append(f"no hub made: {get_hub_if_exists() is None}")  # a thread worker's request touched no gevent
print(order)
"""


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("patched", "['waiting connection', 'served']"), ("plain", "['served', 'no hub made: True']")],
)
def test_after_each_request_a_gevent_worker_lets_its_other_connections_go_first(mode, expected):
    done = subprocess.run(
        [sys.executable, "-c", _HOOK, mode], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
    )
    assert done.stdout.strip() == expected
