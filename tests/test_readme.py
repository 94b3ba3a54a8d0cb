"""The README runs as written: its ```sh blocks, in order, against a live server started as `make run` starts it.

Each block runs in its own bash with `set -eo pipefail` (every command must succeed), the variables and
functions of the blocks before it, and `curl` wrapped to keep each answer's status and body. Every
`# -> ...` comment is then checked against the answer of the last curl written before it: its status
code, and the JSON fields it shows (a string value exactly, unless it holds `...` or a `<placeholder>`;
a number only for being there, since ids are opaque); a `# ->` line that is no JSON must appear in
the block's output (placeholders match anything).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.harness import free_port
from network.config import ROOT

README = ROOT / "README.md"
#: The server's options, as the Makefile's `run` target passes them (checked below).
GUNICORN_OPTIONS = ["--config", "python:network.serving", "--worker-class", "gevent", "--limit-request-line", "8190"]
#: How `make run` is started for the README's session (its partner-postback part says so).
SERVER_ENV = {"POSTBACK_ALLOW_HTTP": "true", "POSTBACK_ALLOWED_NETWORKS": "127.0.0.1/32"}
BLOCK_TIMEOUT = 60


@dataclass
class Block:
    """One ```sh block of the README."""

    line: int
    text: str


def sh_blocks(markdown: str) -> list[Block]:
    """Return the README's ```sh blocks in order (other fences are not run)."""
    blocks: list[Block] = []
    start, current = 0, None
    for number, line in enumerate(markdown.splitlines(), 1):
        if current is None and line.strip() == "```sh":
            current, start = list[str](), number + 1
        elif current is not None and line.strip() == "```":
            blocks.append(Block(start, "\n".join(current) + "\n"))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


_EXPECT = re.compile(r"(?:^|\s)# -> (.*)$")
_COMMENT = re.compile(r"(?:^|\s)#(?:\s|$)")
_PAIR = re.compile(r'"(\w+)":\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|true|false|null|\.\.\.|\[|\{)')


def expectations(text: str) -> list[tuple[int, str]]:
    """Return (index of the last curl written before it, expected text) for each `# ->` comment of a block."""
    found, curls = [], 0
    for line in text.splitlines():
        comment = _COMMENT.search(line)
        code = line[: comment.start()] if comment else line
        curls += len(re.findall(r"(?:^|[\s($|])curl\s", code))
        expected = _EXPECT.search(line)
        if expected:
            found.append((curls, expected.group(1).strip()))
    return found


def _pattern(expected: str) -> re.Pattern[str]:
    """A README placeholder matches anything: `...` and `<click id>`."""
    parts = re.split(r"(\.\.\.|<[^>]+>)", expected)
    return re.compile("".join(".*" if i % 2 else re.escape(p) for i, p in enumerate(parts)), re.DOTALL)


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _dicts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _dicts(item)


def json_mismatches(expected: str, body: Any, base: str) -> list[str]:
    """Return what the answer lacks of the fields an expected JSON fragment shows."""
    problems = []
    for key, raw in _PAIR.findall(expected):
        having = [d[key] for d in _dicts(body) if key in d]
        if not having:
            problems.append(f"no field {key!r}")
        elif raw.startswith('"'):
            want = json.loads(raw).replace("http://127.0.0.1:5000", base)
            pattern = _pattern(want)
            if not any(isinstance(v, str) and pattern.fullmatch(v) for v in having):
                problems.append(f"{key!r} is {having!r}, not {want!r}")
        elif raw in ("true", "false", "null"):
            if json.loads(raw) not in having:
                problems.append(f"{key!r} is {having!r}, not {raw}")
        elif raw == "[" and not any(isinstance(v, list) for v in having):
            problems.append(f"{key!r} is not a list")
    return problems


#: Runs before each block: the blocks' state so far, and curl keeping each answer (-D adds the headers).
_PROLOGUE = r"""
set -eo pipefail
__baseline=$(compgen -v)
[ -f "$README_STATE/vars" ] && source "$README_STATE/vars"
curl() {
  local n=$(( $(cat "$README_STATE/curls" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$README_STATE/curls"
  command curl -D "$README_STATE/$n.headers" "$@" | tee "$README_STATE/$n.out"
}
"""
#: Runs after a block that succeeded: keep its variables and functions for the next.
_EPILOGUE = r"""
{
  for __name in $(compgen -v | grep -vxF -e "$__baseline" -e __baseline -e __name | grep -vE '^(BASH|FUNCNAME|PIPESTATUS|_$)'); do
    declare -p "$__name"
  done
  declare -f
} > "$README_STATE/vars.new"
mv "$README_STATE/vars.new" "$README_STATE/vars"
"""


class Live:
    """A server, its scheduler and a fresh database, as `make run` starts them (SQLite, gevent)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        venv = Path(sys.prefix)
        self.bin = venv / "bin"
        (work / "instance").mkdir()
        # The README runs `.venv/bin/flask` from the repository's folder: here, a folder of its own.
        (work / ".venv").symlink_to(venv)
        self.env = {
            **os.environ,
            **SERVER_ENV,
            "DATABASE_URL": f"sqlite:///{work / 'instance' / 'network.db'}",
            "SECRET_KEY": "readme-secret-key",
            "PUBLIC_BASE_URL": self.base,
            "PYTHONPATH": str(ROOT),
            "BASE": self.base,
        }
        self.env.pop("TESTING", None)
        self.processes: list[subprocess.Popen[Any]] = []
        self.logs: dict[str, Path] = {}

    def flask(self, *args: str) -> str:
        done = subprocess.run(
            [str(self.bin / "flask"), "--app", "wsgi", *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"flask {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def spawn(self, name: str, command: list[str]) -> None:
        log = self.work / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:
            self.processes.append(
                subprocess.Popen(
                    command, cwd=self.work, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

    def start(self) -> None:
        self.flask("db", "upgrade")
        self.flask("demo", "seed", "--env-file", str(self.work / "instance" / "demo-keys.env"))
        self.spawn("scheduler", [str(self.bin / "flask"), "--app", "wsgi", "scheduler", "run"])
        self.spawn(
            "server",
            [
                str(self.bin / "gunicorn"),
                *GUNICORN_OPTIONS,
                "--bind", f"127.0.0.1:{self.port}",
                "--workers", "2",
                "--chdir", str(ROOT),
                "--access-logfile", "-",
                "wsgi:app",
            ],
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline or self.processes[-1].poll() is not None:
                    raise RuntimeError(f"the server did not start:\n{self.output()}") from None
                time.sleep(0.2)

    def output(self) -> str:
        return "\n".join(f"--- {name} ---\n{path.read_text(errors='replace')}" for name, path in self.logs.items())

    def stop(self) -> None:
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    exports = ROOT / "instance" / "payout-exports"
    before = set(exports.glob("*")) if exports.exists() else set()
    server = Live(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        # Settling writes finance's CSV under the repository's instance/ (network/payouts/settlement.py).
        for path in set(exports.glob("*")) - before if exports.exists() else ():
            path.unlink()


def _status(headers: Path) -> int | None:
    codes = (
        re.findall(r"^HTTP/\S+ (\d{3})", headers.read_text(errors="replace"), re.MULTILINE) if headers.exists() else []
    )
    return int(codes[-1]) if codes else None


def check_block(block: Block, state: Path, first_curl: int, stdout: str, base: str) -> list[str]:
    """Return how the block's answers differ from its `# ->` comments."""
    problems = []
    for index, expected in expectations(block.text):
        number = first_curl + index
        body = (state / f"{number}.out").read_text(errors="replace") if index else ""
        status = _status(state / f"{number}.headers") if index else None
        text = expected
        code = re.match(r"(\d{3})\b\s*", text)
        if code:
            if status != int(code.group(1)):
                problems.append(f"# -> {expected}: the answer was {status}: {body[:500]}")
                continue
            text = text[code.end() :]
        if text.startswith("{"):
            try:
                parsed = json.loads(body)
            except ValueError:
                problems.append(f"# -> {expected}: the answer is not JSON: {body[:500]}")
                continue
            problems += [f"# -> {expected}: {p}: {body[:500]}" for p in json_mismatches(text, parsed, base)]
        elif text and not _pattern(text.replace("http://127.0.0.1:5000", base)).search(stdout):
            problems.append(f"# -> {expected}: not in the output:\n{stdout}")
    return problems


def run_blocks(live: Live, blocks: list[Block]) -> None:
    state = live.work / "state"
    state.mkdir()
    env = {**live.env, "README_STATE": str(state)}
    for block in blocks:
        first_curl = int((state / "curls").read_text()) if (state / "curls").exists() else 0
        script = _PROLOGUE + block.text + _EPILOGUE
        # A session of its own: what the block leaves running (the listener) is stopped with the server.
        bash = subprocess.Popen(
            ["bash", "-c", script],
            cwd=live.work,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        live.processes.append(bash)
        try:
            stdout, stderr = bash.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"README.md line {block.line}: the block did not end in {BLOCK_TIMEOUT} s:\n{block.text}")
        where = f"README.md line {block.line}:\n{block.text}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
        assert bash.returncode == 0, f"exit {bash.returncode}, {where}"
        assert "Traceback" not in stdout + stderr, where
        problems = check_block(block, state, first_curl, stdout, live.base)
        assert not problems, "\n".join(problems) + "\n" + where


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("TEST_POSTGRES_URL")), reason="run in the SQLite pass: `make run` serves SQLite"
)
def test_the_readme_session_runs_as_written(live: Live) -> None:
    blocks = sh_blocks(README.read_text())
    assert len(blocks) >= 4 and sum(len(expectations(b.text)) for b in blocks) >= 15
    run_blocks(live, blocks)
    # The partner's listener received the scheduler's delivery (the README shows its request line).
    received = (live.work / "instance" / "postbacks.log").read_text()
    assert re.search(r"^GET /pb\?cid=[^&]+&payout=2\.00&status=approved HTTP/1\.1$", received, re.MULTILINE), received
    # The request-line limit the README gives (8,190 bytes) is the one gunicorn applies.
    assert _request_line_status(live.port, 8190) == 404  # the app's answer: an unknown code
    assert _request_line_status(live.port, 8191) == 400  # gunicorn's, before the app
    output = live.output()
    assert "Traceback" not in output, output
    assert " 500 " not in output, output


def _request_line_status(port: int, length: int) -> int:
    """Send `GET /c/nope?sub1=xxx HTTP/1.1`, the line `length` bytes long; return the status."""
    head, tail = "GET /c/nope?sub1=", " HTTP/1.1"
    line = head + "x" * (length - len(head) - len(tail)) + tail
    assert len(line) == length
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"{line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        answer = conn.makefile("rb").readline()
    return int(answer.split()[1])


def test_make_run_starts_the_server_as_this_test_does() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    [gunicorn] = [line for line in recipe.splitlines() if "gunicorn" in line]
    options = dict(zip(GUNICORN_OPTIONS[::2], GUNICORN_OPTIONS[1::2], strict=True))
    assert "WORKER_CLASS ?= gevent" in makefile
    options["--worker-class"] = "$(WORKER_CLASS)"
    for name, value in options.items():
        assert f"{name} {value} " in gunicorn, name
    assert "db upgrade" in recipe and "demo seed" in recipe and "scheduler run" in recipe
    # The README tells how to serve its session with the settings this test serves it with.
    assert " ".join(f"{k}={v}" for k, v in SERVER_ENV.items()) + " make run" in README.read_text()


def test_expectations_are_read_from_the_comments() -> None:
    block = Block(
        1, 'X=$(curl -s a | field id)\n# -> 201 {"id": 2, "status": "active", ...}\ncurl b   # -> {"ok": true}\n'
    )
    assert expectations(block.text) == [(1, '201 {"id": 2, "status": "active", ...}'), (2, '{"ok": true}')]
    body = {"items": [{"id": 7, "status": "active", "url": "http://h:1/c/abc"}]}
    assert (
        json_mismatches('{"id": 2, "status": "active", "url": "http://127.0.0.1:5000/c/<code>"}', body, "http://h:1")
        == []
    )
    assert json_mismatches('{"status": "paid", "missing": 1}', body, "") == [
        "'status' is ['active'], not 'paid'",
        "no field 'missing'",
    ]
