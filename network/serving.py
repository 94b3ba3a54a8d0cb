"""The web server's side: what depends on the worker class is chosen here, once, when a worker starts.

wsgi.py calls `start()` when it makes the app, and gunicorn's `post_worker_init` hook below calls it
in every worker, so that gevent's workers are recognised with or without `--preload`:

- Imported in the worker after gevent patched it (the default): `start` enables the greenlets'
  waits at once (network/green.py).
- Imported before (`--preload`: the app is made in gunicorn's master, then forked): `start` asks
  gevent to tell it when it patches (gevent's own event, `GeventDidPatchAllEvent`), which a gevent
  worker does first thing after the fork; sync and thread workers never patch, and keep the
  database drivers' own waits.

On gevent workers a connection's greenlet serves its next request straight away when the client has
sent it by the time the last answer is done, without a turn of the hub: under load a few busy
keep-alive connections were served over and over while the worker's others waited. On the 2-core
machine, 2 workers and 16 connections of wrk (bench/clicks' load), a click's p99 was 300 ms and the
bare 302's 46 ms; giving way after every request made them 15 ms and 13 ms, at the cost of one
greenlet switch per request: `gunicorn -c python:network.serving wsgi:app` adds that hook
(`post_request`). Thread workers are left as they are.

With PROMETHEUS_MULTIPROC_DIR set, `on_starting` empties that folder in the master and `child_exit`
drops an exited worker's live gauges, so /metrics adds up the workers of this run (network/metrics.py).
"""

from __future__ import annotations

import os
from typing import Any

# Imported now, not in child_exit: that runs in a signal handler, and a second worker's SIGCHLD
# arriving during the first one's import broke it (a partly initialised module).
from prometheus_client import multiprocess

from network import green


def start() -> None:
    """Choose this process's waits: a gevent worker's now or when gevent patches it, else the drivers' own."""
    if green.install():
        return
    from gevent import events

    if _on_patch not in events.subscribers:
        events.subscribers.append(_on_patch)


def _on_patch(event: Any) -> None:
    from gevent import events

    if isinstance(event, events.GeventDidPatchAllEvent):
        green.install()


def post_worker_init(_worker: Any) -> None:
    """gunicorn's hook in each worker once it is set up (gevent's workers have patched by then).

    So every app served with `--config python:network.serving` gets the same waits and turns, the
    bench's bare 302 as much as wsgi:app (which also calls `start` itself, for servers without
    this config); `start` chooses once per process.
    """
    start()


def post_request(_worker: Any, _req: Any, _environ: Any, _resp: Any) -> None:
    """After each request, in a gevent worker, let the worker's other connections have their turn first."""
    if green.enabled():
        green.give_way()


def on_starting(server: Any) -> None:
    """gunicorn's hook in the master as the server starts: empty PROMETHEUS_MULTIPROC_DIR (network/metrics.py).

    The workers' metric files of an earlier run would be added to this run's; without the setting
    each worker counts for itself, and /metrics answers the one that serves the scrape.
    """
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        if server.cfg.workers > 1:
            server.log.warning("PROMETHEUS_MULTIPROC_DIR is not set: /metrics counts only the worker that answers it")
        return
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn's hook in the master when it has reaped a worker: its live gauges no longer count."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
