"""gunicorn's server hooks for the network's web workers: `gunicorn -c python:network.serving wsgi:app`.

On gevent workers a connection's greenlet serves its next request straight away when the client has
sent it by the time the last answer is done, without a turn of the hub: under load a few busy
keep-alive connections were served over and over while the worker's others waited. On the 2-core
machine, 2 workers and 16 connections of wrk (bench/clicks' load), a click's p99 was 300 ms and the
bare 302's 46 ms; giving way after every request made them 15 ms and 13 ms, at the cost of one
greenlet switch per request. Thread workers are left as they are.
"""

from __future__ import annotations

from typing import Any

from network import green


def post_request(_worker: Any, _req: Any, _environ: Any, _resp: Any) -> None:
    """After each request, under gevent, let the worker's other connections have their turn first."""
    if green.patched():
        green.give_way()
