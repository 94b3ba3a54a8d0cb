"""Reusable benchmark pieces: run an app under gunicorn, drive it with a load generator, compare.

    from bench.harness import Server, Target, compare, bare_env

    with Server("wsgi:app", env={"DATABASE_URL": url}, workers=2, threads=4) as app, \\
         Server("bench.harness:bare_app()", **bare_env()) as bare:
        compare([Target("bare 302", bare.url + "/c/x"), Target("click", app.url + "/c/CODE")])

The load generator is wrk when it is on PATH (`apt-get install wrk`), otherwise a Python generator
(asyncio, keep-alive, several connections, in its own process). Both report requests/s and latency
percentiles; the Python one needs more CPU for itself, so on a small machine its figures are lower
for every target alike: compare ratios, not absolutes, across generators.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import json
import multiprocessing
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))


# ---- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    """Return a TCP port on loopback that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bare_app() -> Any:
    """Return the baseline: a bare Flask app whose only route answers 302 (gunicorn factory)."""
    from flask import Flask, redirect

    app = Flask("bare")

    @app.get("/c/<code>")
    def click(code: str) -> Any:
        return redirect("https://shop.example/landing?cid=x", code=302)

    return app


def bare_env() -> dict[str, Any]:
    """Return Server keyword arguments for the bare app (no environment needed)."""
    return {"env": {}}


class Server:
    """A gunicorn process serving `app` ("module:variable" or "module:factory()") on loopback."""

    def __init__(
        self,
        app: str,
        *,
        env: dict[str, str] | None = None,
        workers: int = 2,
        threads: int = 1,
        worker_class: str | None = None,
        port: int | None = None,
        ready_path: str = "/",
        extra_args: Sequence[str] = (),
        log_path: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.app = app
        self.env = {**os.environ, **(env or {})}
        self.workers = workers
        self.threads = threads
        self.worker_class = worker_class or ("gthread" if threads > 1 else "sync")
        self.port = port or free_port()
        self.ready_path = ready_path
        self.extra_args = list(extra_args)
        self.log_path = log_path
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._final = ""

    @property
    def url(self) -> str:
        """Return the base URL (http://127.0.0.1:PORT)."""
        return f"http://127.0.0.1:{self.port}"

    def describe(self) -> str:
        """Return the worker setup in words."""
        if self.worker_class in ("gevent", "eventlet"):  # one thread; greenlets up to --worker-connections
            return f"gunicorn {self.worker_class} workers={self.workers}"
        return f"gunicorn {self.worker_class} workers={self.workers} threads={self.threads}"

    def start(self) -> Server:
        """Start gunicorn and wait until it answers HTTP."""
        command = [
            GUNICORN,
            "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", self.worker_class,
            "--graceful-timeout", "20",
            "--keep-alive", "30",
            # As `make run`: the longest request line gunicorn honours (it caps the option at 8190).
            "--limit-request-line", "8190",
            "--chdir", str(ROOT),
            # The README's server hooks, for every target alike (network/serving.py).
            "--config", "python:network.serving",
            *self.extra_args,
            self.app,
        ]  # fmt: skip
        self._log = open(self.log_path, "wb") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}:\n{self.output()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", self.ready_path)
                conn.getresponse().read()  # any HTTP answer means it is serving
                return self
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()
        self.stop()
        raise RuntimeError(f"gunicorn did not answer within {self.timeout} s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop gunicorn with `sig` (SIGTERM: graceful) and return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log is not None:
            self._final = self.output()
            self._log.close()
            self._log = None
        return self.process.returncode

    def output(self) -> str:
        """Return the end of what gunicorn printed."""
        if self._log is None:
            return self._final
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- load ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    """What one load run measured."""

    name: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    statuses: dict[str, int] = dataclasses.field(default_factory=dict)
    generator: str = ""
    #: How the load's connections were spread over the server's worker processes ("9+7"), or "".
    spread: str = ""


@dataclasses.dataclass
class Target:
    """A URL to drive, with a name for the report."""

    name: str
    url: str
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


def have_wrk() -> bool:
    """Return whether wrk is on PATH."""
    return shutil.which("wrk") is not None


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _WRK_UNITS[match.group(2)]


def run_wrk(target: Target, *, seconds: float, connections: int, threads: int) -> Result:
    """Drive `target` with wrk and return its figures."""
    command = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
    for key, value in target.headers.items():
        command += ["-H", f"{key}: {value}"]
    out = subprocess.run([*command, target.url], capture_output=True, text=True, check=True, timeout=seconds + 30)
    text = out.stdout
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", text, re.M))
    requests = int(re.search(r"(\d+) requests in", text).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    errors = 0
    for match in re.finditer(
        r"Non-2xx or 3xx responses: (\d+)|Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        errors += sum(int(g) for g in match.groups() if g)
    return Result(
        target.name, requests, seconds, rps, _wrk_ms(percentiles["50"]), _wrk_ms(percentiles["99"]), errors,
        generator="wrk",
    )  # fmt: skip


async def _connection(
    host: str, port: int, request: bytes, stop_at: float, latencies: list[float], statuses: dict[str, int]
) -> None:
    reader = writer = None
    while time.perf_counter() < stop_at:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        assert reader is not None
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head[9:12].decode()
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


def _python_worker(url: str, headers: dict[str, str], seconds: float, connections: int, queue: Any) -> None:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    stop_at = time.perf_counter() + seconds

    async def main() -> None:
        await asyncio.gather(
            *(_connection(parts.hostname or "127.0.0.1", parts.port or 80, request, stop_at, latencies, statuses)
              for _ in range(connections))
        )  # fmt: skip

    asyncio.run(main())
    queue.put((latencies, statuses))


def run_python(target: Target, *, seconds: float, connections: int, processes: int = 1) -> Result:
    """Drive `target` with the Python generator (keep-alive, `connections` per process)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_python_worker, args=(target.url, target.headers, seconds, connections, queue))
        for _ in range(processes)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    for _ in workers:
        lat, st = queue.get(timeout=seconds + 60)
        latencies += lat
        for key, value in st.items():
            statuses[key] = statuses.get(key, 0) + value
    for worker in workers:
        worker.join(10)
    elapsed = max(time.perf_counter() - started - 0.3, seconds)  # process start-up is not load time
    latencies.sort()
    errors = sum(v for k, v in statuses.items() if not k.startswith(("2", "3")))
    return Result(
        target.name, len(latencies), elapsed, len(latencies) / seconds, _pct(latencies, 50) * 1000,
        _pct(latencies, 99) * 1000, errors, statuses, generator="python",
    )  # fmt: skip


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    index = min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))
    return values[index]


def run_load(target: Target, *, seconds: float, connections: int, threads: int = 2, generator: str = "auto") -> Result:
    """Drive `target` with wrk when available (or asked for), else with the Python generator."""
    if generator == "wrk" or (generator == "auto" and have_wrk()):
        return run_wrk(target, seconds=seconds, connections=connections, threads=threads)
    return run_python(target, seconds=seconds, connections=connections, processes=1)


def unloaded_p50(target: Target, *, requests: int = 2000) -> float:
    """Return the median latency in ms of `requests` sequential requests on one keep-alive connection."""
    parts = urlsplit(target.url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    samples = []
    for i in range(requests + 100):
        started = time.perf_counter()
        conn.request("GET", path, headers=target.headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        if i >= 100:  # warm-up
            samples.append(elapsed)
    conn.close()
    return statistics.median(samples) * 1000


class ConnectionSpread:
    """Counts, partway through a load run, the server's open connections per worker process (Linux `ss`).

    gunicorn's workers race to accept the load generator's keep-alive connections, and the split
    lasts the whole run: a worker with 2 of 16 connections has at most 2 requests in flight, so a
    server whose requests wait (on a database) answers fewer than with 8 and 8. Printed beside
    each run, it explains runs of the same code that differ by a third.
    """

    def __init__(self, url: str, *, after: float) -> None:
        self.port = urlsplit(url).port
        self.text = ""
        self._timer = threading.Timer(after, self._count)
        self._timer.daemon = True

    def _count(self) -> None:
        if shutil.which("ss") is None:
            return
        command = ["ss", "-tnpH", "state", "established", f"( sport = :{self.port} )"]
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=10).stdout
        per_worker = Counter(re.findall(r"pid=(\d+)", out))
        self.text = "+".join(str(n) for n in sorted(per_worker.values(), reverse=True))

    def __enter__(self) -> ConnectionSpread:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()
        self._timer.join()


def starved(spread: str, *, workers: int, threads: int, connections: int) -> bool:
    """Return whether a run's split left a worker fewer connections than threads, when there were enough for all.

    Such a run does not measure the server: a worker's threads sat idle for want of connections.
    """
    if not spread:  # not counted (no `ss`)
        return False
    return fewest(spread, workers) < min(threads, connections // workers)


def fewest(spread: str, workers: int) -> int:
    """Return the fewest connections a worker held in a split ("13+3"; a worker missing from it held none)."""
    counts = [int(n) for n in spread.split("+")] if spread else []
    return min(counts + [0] * (workers - len(counts)))


def instructions_of(argv: Sequence[str]) -> int:
    """Return the instructions `python argv...` executes, counted by valgrind's callgrind (the same for the same code)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, *argv]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


# ---- comparison ----------------------------------------------------------------------------------


def compare(
    targets: Sequence[Target],
    *,
    rounds: int = 3,
    seconds: float = 10.0,
    connections: int = 16,
    threads: int = 2,
    generator: str = "auto",
    warmup: float = 2.0,
    out: Any = sys.stdout,
) -> dict[str, dict[str, float]]:
    """Drive each target in turn, `rounds` times (alternating, so drift hits all alike); print and return medians."""
    results: dict[str, list[Result]] = {t.name: [] for t in targets}
    for target in targets:
        run_load(target, seconds=warmup, connections=connections, threads=threads, generator=generator)
    for round_ in range(rounds):
        for target in targets:
            result = run_load(target, seconds=seconds, connections=connections, threads=threads, generator=generator)
            results[target.name].append(result)
            print(
                f"  round {round_ + 1} {target.name:<24} {result.rps:>9.0f} req/s  p50 {result.p50_ms:7.2f} ms"
                f"  p99 {result.p99_ms:7.2f} ms  errors {result.errors}  ({result.generator})",
                file=out,
                flush=True,
            )
    summary = {}
    for name, runs in results.items():
        summary[name] = {
            "rps": statistics.median(r.rps for r in runs),
            "p50_ms": statistics.median(r.p50_ms for r in runs),
            "p99_ms": statistics.median(r.p99_ms for r in runs),
            "errors": sum(r.errors for r in runs),
        }
    for target in targets:
        summary[target.name]["unloaded_p50_ms"] = unloaded_p50(target)
    return summary


def print_summary(summary: dict[str, dict[str, float]], baseline: str, out: Any = sys.stdout) -> None:
    """Print medians per target and each target's ratio to the baseline."""
    base = summary[baseline]
    print(
        f"  {'target':<24} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'unloaded p50':>13} {'x bare req/s':>13} {'x bare p99':>11}",
        file=out,
    )
    for name, s in summary.items():
        print(
            f"  {name:<24} {s['rps']:>9.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} {s['unloaded_p50_ms']:>10.3f} ms"
            f" {s['rps'] / base['rps']:>13.2f} {s['p99_ms'] / base['p99_ms']:>11.2f}",
            file=out,
        )


@contextlib.contextmanager
def servers(*items: Server) -> Iterator[tuple[Server, ...]]:
    """Start several servers and stop them all at the end."""
    started: list[Server] = []
    try:
        for item in items:
            started.append(item.start())
        yield tuple(started)
    finally:
        for item in reversed(started):
            item.stop()


def dump_json(summary: dict[str, Any], path: str) -> None:
    """Write a summary as JSON (for CI artefacts or comparisons between runs)."""
    Path(path).write_text(json.dumps(summary, indent=2))
