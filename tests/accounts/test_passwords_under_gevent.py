"""A sign-in's password hash runs off gevent's hub: the clicks its gevent worker serves meanwhile go on.

The case runs in a process of its own, monkey-patched as gunicorn's gevent worker is. A ticker greenlet
notes the time every 2 ms while argon2 verifies passwords: a hash on the hub would leave it no turn for
the whole hash (tens of milliseconds).
"""

from __future__ import annotations

import json
import subprocess
import sys

from network.config import ROOT

_SCRIPT = """
from gevent import monkey

monkey.patch_all()

import json, time
import gevent
from network import serving
from network.accounts import users

serving.start()  # as wsgi.py does in a gevent worker

stored = users.HASHER.hash("a password to check")
ticks = []


def ticker():
    while True:
        ticks.append(time.monotonic())
        gevent.sleep(0.002)


gevent.spawn(ticker)
gevent.sleep(0.01)
durations = []
for _ in range(3):
    started = time.monotonic()
    assert users._verify(stored, "a password to check")
    durations.append(time.monotonic() - started)
    gevent.sleep(0.01)
gaps = [b - a for a, b in zip(ticks, ticks[1:])]
print(json.dumps({"hash": min(durations), "longest_gap": max(gaps)}))
"""


def test_a_password_hash_leaves_the_other_greenlets_running():
    done = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["hash"] > 0.01, result  # argon2 at its real cost
    assert result["longest_gap"] < result["hash"] / 2, result
