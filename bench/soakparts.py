"""The pieces of bench/soak around the traffic: the partners' listener, the processes' memory and CPU,
and which web worker holds a connection (all from /proc). bench/soaktraffic.py is the traffic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import os
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


# ---- the partner's listener ----------------------------------------------------------------------


class Listener:
    """A local HTTP server standing in for the partners' trackers: answers 200 and keeps each webhook-id."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with owner.lock:
                    owner.received[self.headers.get("webhook-id") or self.path] += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Listener:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- memory --------------------------------------------------------------------------------------


def rss_kb(pid: int) -> int | None:
    """Return a process's resident set size in KB (from /proc), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children_of(parent: int) -> list[int]:
    """Return the pids of a process's children (gunicorn's workers are the master's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def socket_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Return which of `pids` holds the server side of the loopback connection from `client_port`, if any."""
    wanted = f":{server_port:04X} "
    peer = f":{client_port:04X} "
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (fields[1] + " ").endswith(wanted) and (fields[2] + " ").endswith(peer):
                inode = fields[9]
                break
        if inode:
            break
    if not inode or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == target:
                        return pid
        except OSError:
            continue
    return None


def cpu_seconds(pid: int) -> float | None:
    """Return a process's user + system CPU time so far (from /proc), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Track:
    """One process's RSS samples: (seconds since the traffic started, KB)."""

    role: str
    pid: int
    samples: list[tuple[float, int]] = dataclasses.field(default_factory=list)
    cpu: float = 0.0


class Sampler:
    """Samples the RSS of every process under test every `every` seconds, in a thread."""

    def __init__(self, processes: Any, every: float) -> None:
        self.processes = processes  # () -> {pid: role}
        self.every = every
        self.tracks: dict[int, Track] = {}
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self, started: float) -> Sampler:
        self.started = started
        self.thread.start()
        return self

    def sample(self) -> None:
        now = time.monotonic() - self.started
        for pid, role in self.processes().items():
            kb, cpu = rss_kb(pid), cpu_seconds(pid)
            if kb is not None and cpu is not None:
                track = self.tracks.setdefault(pid, Track(role, pid))
                track.samples.append((now, kb))
                track.cpu = cpu

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()

    def join(self) -> None:
        self.stop.set()
        self.thread.join(5)


def growth(track: Track, until: float) -> tuple[float, float, float] | None:
    """Return (RSS at the start of the second half of the process's life in the traffic, at its end, growth).

    The second half runs from the middle of [the process's first sample, `until`] to `until`; the
    RSS at each end is the median of the three samples nearest it, so one sample's jitter does not
    decide. None when the process did not live to `until` (it was killed) or has too few samples.
    """
    samples = [(t, kb) for t, kb in track.samples if t <= until + 0.5]
    if len(samples) < 6 or samples[-1][0] < until - 5:
        return None
    born = max(samples[0][0], 0.0)
    middle = born + (until - born) / 2
    second = [kb for t, kb in samples if t >= middle]
    if len(second) < 6:
        return None
    first_kb = statistics.median(second[:3])
    last_kb = statistics.median(second[-3:])
    return first_kb, last_kb, last_kb / first_kb - 1
