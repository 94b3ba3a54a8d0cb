"""The soak's short version: bench/soak for a minute on PostgreSQL must pass every check.

bench/soak runs 4 gevent web workers and 2 schedulers under mixed traffic, SIGKILLs a worker and a
scheduler midway, and checks RELIABILITY.md's invariants, that every click and postback answered
is stored, that every partner delivery logged was received, and that memory stayed flat
(bench/README.md). Its figures are printed, never asserted here; only its verdict is.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from network.config import ROOT
from tests.conftest import PG_ADMIN_URL

pytestmark = pytest.mark.skipif(
    PG_ADMIN_URL is None,
    reason="the soak runs several processes against one database: PostgreSQL only (set TEST_POSTGRES_URL)",
)


def test_a_minute_of_soak_passes_every_check(tmp_path: Path) -> None:
    report = tmp_path / "soak.json"
    command = [sys.executable, str(ROOT / "bench" / "soak"), "--seconds", "60", "--report", str(report)]
    done = subprocess.run(
        [*command, "--pg-url", str(PG_ADMIN_URL)], capture_output=True, text=True, timeout=400, check=False
    )
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]
    figures = json.loads(report.read_text())
    assert figures["failures"] == []
    # The run did what it says: clicks, postbacks, deliveries and payouts all happened.
    assert figures["clicks"]["answered_302"] > 0
    assert figures["postbacks"]["new_answered"] > 0
    assert figures["deliveries"]["delivered"] > 0
    assert figures["payouts"]["by_status"].get("paid", 0) > 0
