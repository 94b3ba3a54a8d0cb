"""SQLite under gevent's workers: waiting for the write lock and the writers' line lets the other greenlets run.

Each case runs in a process of its own, monkey-patched as gunicorn's gevent worker is, on a SQLite
file of its own. A ticker greenlet counts its turns every 10 ms: a wait that stopped the hub would
leave it none.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from sqlalchemy import text

from network import db, green
from network.config import ROOT

_PATCH = """
from gevent import monkey

monkey.patch_all()
"""

_COMMON = (
    _PATCH
    + """
import fcntl, json, os, sqlite3, subprocess, sys, time
import gevent
from sqlalchemy import text
from network import db, green, serving

folder = sys.argv[1]
ticks = []


def ticker():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.01)


def ticks_between(start, end):
    return sum(start <= t <= end for t in ticks)


gevent.spawn(ticker)
"""
)

_ENGINE = """
serving.start()  # as wsgi.py does when it makes the app
db.engines.BUSY_TIMEOUT_MS = int(sys.argv[2])
engine = db.make_engine(f"sqlite:///{folder}/network.db")
"""

_WRITE_LOCK = (
    _COMMON
    + _ENGINE
    + """
with engine.begin() as conn:
    conn.execute(text("CREATE TABLE t (n INTEGER)"))
hold = float(sys.argv[3])
times = {}


def holder():
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))  # BEGIN IMMEDIATE: the write lock
        times["held"] = time.monotonic()
        gevent.sleep(hold)  # waiting for a partner's server, say, the lock still held
        conn.commit()
        times["released"] = time.monotonic()


def writer():
    gevent.sleep(0.05)
    started = time.monotonic()
    conn = engine.connect()
    try:
        conn.execute(text("INSERT INTO t VALUES (2)"))  # begins: waits for the lock
        times["locked"] = time.monotonic()
        conn.commit()
        times["outcome"] = "written"
    except Exception as error:
        times["outcome"] = str(error.__cause__ or error)
        conn.rollback()
    times["waited"] = time.monotonic() - started
    # SQLite's own wait is back on for the connection's other statements, whichever way it ended.
    times["busy timeout after"] = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    conn.close()
    times["ticks while waiting"] = ticks_between(started + 0.01, started + times["waited"] - 0.01)


gevent.joinall([gevent.spawn(holder), gevent.spawn(writer)], raise_error=True)
with engine.connect() as conn:
    times["rows"] = [n for (n,) in conn.execute(text("SELECT n FROM t ORDER BY n"))]
print(json.dumps(times))
"""
)


#: As under gunicorn --preload: the app and its engine are made (and wsgi.py's start) before the worker patches.
_PRELOADED = (
    "import sys\nfrom sqlalchemy import text\nfrom network import db, serving\nfolder = sys.argv[1]\n"
    + _ENGINE
    + _COMMON
    + _WRITE_LOCK.removeprefix(_COMMON + _ENGINE)
)


def _run(script: str, *args: str, timeout: float = 60) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_greenlet_waits_for_the_write_lock_while_its_holder_in_the_same_worker_finishes(tmp_path):
    # The holder keeps its transaction open across a wait of its own: SQLite's busy wait, in the
    # driver's call, would stop the hub, so the holder could never commit and the writer would fail
    # at the timeout (2 s here).
    result = _run(_WRITE_LOCK, str(tmp_path), "2000", "0.3")
    assert result["outcome"] == "written"
    assert result["rows"] == [1, 2]
    assert result["locked"] >= result["released"]  # it began once the holder had committed
    assert 0.2 <= result["waited"] < 1.5
    assert result["ticks while waiting"] >= 10  # 10 ms turns through about 0.25 s of waiting
    assert result["busy timeout after"] == 2000


def test_the_wait_for_the_write_lock_still_ends_at_the_busy_timeout(tmp_path):
    result = _run(_WRITE_LOCK, str(tmp_path), "300", "1.0")
    assert result["outcome"] == "database is locked"
    assert 0.3 <= result["waited"] < 0.9
    assert result["ticks while waiting"] >= 15  # cooperative to the end
    assert result["rows"] == [1]  # the holder's write stands; the writer wrote nothing
    assert result["busy timeout after"] == 300


_LINE = (
    _COMMON
    + """
serving.start()
database = db.Database(f"sqlite:///{folder}/network.db")
# Another process's batch holds the writers' line for `hold` seconds.
holder = subprocess.Popen(
    [sys.executable, "-c", (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); time.sleep(float(sys.argv[2]))"
    ), f"{folder}/network.db-writers", sys.argv[2]],
    stdout=subprocess.PIPE, text=True,
)
assert holder.stdout.readline().strip() == "held"
started = time.monotonic()
result = {}
try:
    with gevent.Timeout(float(sys.argv[3])):
        with database.writers_queue():
            result["entered after"] = time.monotonic() - started
except gevent.Timeout:
    result["entered after"] = None
result["ticks while waiting"] = ticks_between(started + 0.01, time.monotonic() - 0.01)
holder.wait()
gevent.sleep(0.1)  # the interrupted wait's thread takes the line, then gives it back
probe = os.open(f"{folder}/network.db-writers", os.O_RDWR)
try:
    fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    result["free afterwards"] = True
except BlockingIOError:
    result["free afterwards"] = False
print(json.dumps(result))
"""
)


def test_waiting_in_the_writers_line_lets_the_other_greenlets_run(tmp_path):
    result = _run(_LINE, str(tmp_path), "0.4", "10")
    assert result["entered after"] is not None and 0.3 <= result["entered after"] < 2.0
    assert result["ticks while waiting"] >= 15  # a blocking flock would have left the ticker none
    assert result["free afterwards"] is True


def test_a_wait_in_the_writers_line_interrupted_gives_the_line_back_once_it_is_taken(tmp_path):
    # Interrupted at 0.1 s (a timeout), while the other process holds the line for 0.4 s: the
    # thread still waiting takes the line when it is freed, and must not keep it.
    result = _run(_LINE, str(tmp_path), "0.4", "0.1")
    assert result["entered after"] is None
    assert result["free afterwards"] is True


def test_an_engine_made_before_gevent_patched_waits_as_a_greenlet_too(tmp_path):
    result = _run(_PRELOADED, str(tmp_path), "2000", "0.3")
    assert result["outcome"] == "written"
    assert result["locked"] >= result["released"]
    assert result["ticks while waiting"] >= 10


def test_without_gevent_a_thread_waits_in_sqlites_own_busy_wait(tmp_path, monkeypatch):
    def no_greenlets(_seconds: float) -> None:
        raise AssertionError("a greenlet's sleep outside gevent")

    monkeypatch.setattr(green, "sleep", no_greenlets)
    engine = db.make_engine(f"sqlite:///{tmp_path}/network.db")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with engine.connect() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
            holding.set()
            release.wait(5)
            conn.commit()

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(5)
    threading.Timer(0.2, release.set).start()
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))  # waits in SQLite's busy handler for the holder
        conn.commit()
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
    thread.join()
    engine.dispose()
