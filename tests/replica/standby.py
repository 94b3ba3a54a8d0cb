"""A real hot standby of the test run's PostgreSQL server: pg_basebackup, then pg_ctl on a free port.

The standby streams the primary's WAL (`-R -X stream`: a standby.signal and the primary_conninfo), so
it holds every database of the primary's cluster, the run's own included. The primary must allow
replication from 127.0.0.1 (.ci/run adds the pg_hba.conf line). As root, the server's commands run
as the postgres user, which owns the data directory (mode 0700), as PostgreSQL demands.

A replication slot of the standby's own keeps the primary's WAL until the standby has it: a busy
primary (each test run creates a database, which writes it whole to the WAL) otherwise recycles
WAL the standby still needs, and the standby never catches up. The slot is dropped with the
standby; one left by a run that was killed (its process is gone) is dropped by the next.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from tests.faults.cluster import _bin_dir, _free_port

#: Settings a hot standby must have at least as high as its primary's, or it refuses to start.
AT_LEAST_THE_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)
#: Replication slots of standbys made here: the prefix, then the making process's id.
SLOT_PREFIX = "network_standby_"
#: How long starting, pausing or catching up may take before the standby is called broken.
PATIENCE = 120.0


class NoStandby(Exception):
    """A hot standby cannot be made here (tools, permissions, the primary's replication access)."""


class Standby:
    """A hot standby of the server behind `admin_url`, on a free port in a temporary directory."""

    def __init__(self, admin_url: str) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None or not (bin_dir / "pg_basebackup").exists():
            raise NoStandby("PostgreSQL's server binaries (pg_basebackup, pg_ctl) are not installed")
        self._bin = bin_dir
        self._as: list[str] = []
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise NoStandby("running as root without runuser: cannot run PostgreSQL as the postgres user")
            self._as = [runuser, "-u", "postgres", "--"]
        self.primary = make_url(admin_url)
        self.port = _free_port()
        self.base = Path(tempfile.mkdtemp(prefix="network-standby-"))
        if self._as:
            shutil.chown(self.base, "postgres", "postgres")
        self.data = self.base / "data"
        self.slot = f"{SLOT_PREFIX}{os.getpid()}_{self.port}"

    def url(self, database_url: str) -> str:
        """Return `database_url` (a database of the primary) as read on the standby."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def _run(self, tool: str, *args: str, timeout: float = PATIENCE) -> None:
        command = [*self._as, str(self._bin / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if done.returncode != 0:
            raise NoStandby(f"{tool} failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def _write(self, name: str, content: str) -> None:
        path = self.data / name
        path.write_text(content)
        if self._as:
            shutil.chown(path, "postgres", "postgres")
        path.chmod(0o600)

    def start(self) -> None:
        """Copy the primary (an immediate checkpoint, WAL streamed alongside) and start it as a hot standby."""
        primary = self.primary
        self._drop_slots(orphans_only=True)
        self._run(
            "pg_basebackup",
            *("-h", primary.host or "127.0.0.1", "-p", str(primary.port or 5432), "-U", primary.username or "postgres"),
            *("-D", str(self.data), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"),
            *("--create-slot", "--slot", self.slot),
        )
        # A Debian cluster keeps its configuration in /etc: the copy has none, so it gets its own.
        lines = [f"{name} = {value}" for name, value in self._primary_settings().items()]
        lines += [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.base}'",
            "hot_standby = on",
            "fsync = off",
            "shared_buffers = 16MB",
        ]
        self._write("postgresql.conf", "\n".join(lines) + "\n")
        self._write("pg_hba.conf", "local all all trust\nhost all all 127.0.0.1/32 trust\n")
        self._write("pg_ident.conf", "")
        self.data.chmod(0o700)
        self.run()

    def run(self) -> None:
        """Start the server (again, after `stop`) and wait until it answers as a standby."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.base / "server.log"), "-w", "start")
        with self.engine() as engine, engine.connect() as conn:
            if not conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one():
                raise NoStandby("the copy started as a primary, not as a standby")

    def stop(self) -> None:
        """Stop the server as an operator would (fast: open connections are ended)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _primary_settings(self) -> dict[str, str]:
        with _Disposing(create_engine(self.primary)) as engine, engine.connect() as conn:
            rows = conn.execute(
                text("SELECT name, setting FROM pg_settings WHERE name = ANY(:names)"),
                {"names": list(AT_LEAST_THE_PRIMARY)},
            )
            return {name: setting for name, setting in rows}

    def _drop_slots(self, *, orphans_only: bool) -> None:
        """Drop this standby's slot on the primary, or (`orphans_only`) those whose making process is gone."""
        query = text("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE :prefix AND NOT active")
        with _Disposing(create_engine(self.primary, isolation_level="AUTOCOMMIT")) as engine, engine.connect() as conn:
            for (name,) in conn.execute(query, {"prefix": SLOT_PREFIX + "%"}).all():
                if _orphan(name) if orphans_only else name == self.slot:
                    conn.execute(text("SELECT pg_drop_replication_slot(:name)"), {"name": name})

    def engine(self) -> _Disposing:
        """Return an engine on the standby's postgres database (a context that disposes it)."""
        return _Disposing(create_engine(self.url(self.primary.render_as_string(hide_password=False))))

    def pause(self) -> None:
        """Hold up the standby's replay: from now on it answers as of this moment (its lag grows)."""
        with self.engine() as engine, engine.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_pause()"))
            # Asking pauses at the next record; wait until it has (PostgreSQL 14+ says when).
            _until(lambda: conn.execute(text("SELECT pg_get_wal_replay_pause_state()")).scalar_one() == "paused")

    def resume(self) -> None:
        """Let the standby replay again."""
        with self.engine() as engine, engine.connect() as conn:
            conn.execute(text("SELECT pg_wal_replay_resume()"))

    def catch_up(self) -> None:
        """Wait until the standby has replayed everything the primary had written when called."""
        primary = create_engine(self.primary)
        try:
            with primary.connect() as conn:
                lsn = conn.execute(text("SELECT pg_current_wal_lsn()::text")).scalar_one()
        finally:
            primary.dispose()
        query = text("SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), CAST(:lsn AS pg_lsn)) >= 0")
        with self.engine() as engine, engine.connect() as conn:
            _until(lambda: bool(conn.execute(query, {"lsn": lsn}).scalar_one()))

    def destroy(self) -> None:
        """Stop the standby if it runs and remove its directory."""
        if self.data.exists():
            subprocess.run(
                [*self._as, str(self._bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                cwd=self.base,
            )
        shutil.rmtree(self.base, ignore_errors=True)
        self._drop_slots(orphans_only=False)


def _orphan(slot: str) -> bool:
    """Return whether the process that made a standby's slot is gone (its id follows SLOT_PREFIX)."""
    try:
        os.kill(int(slot.removeprefix(SLOT_PREFIX).split("_")[0]), 0)
    except ProcessLookupError:
        return True
    except (ValueError, PermissionError):
        return False  # not one of ours, or another user's process: leave it
    return False


class _Disposing:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def __enter__(self) -> Engine:
        return self._engine

    def __exit__(self, *_exc: object) -> None:
        self._engine.dispose()


def _until(check: Callable[[], bool]) -> None:
    """Wait until `check()` is true (a state reached, not a duration measured)."""
    deadline = time.monotonic() + PATIENCE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"the standby did not get there within {PATIENCE} s")
        time.sleep(0.05)
