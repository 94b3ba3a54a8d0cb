"""A worker process for the billing race (RELIABILITY.md case 32). It prints "ready", reads one JSON
command from stdin, does its part many times, and prints what it did as one JSON line:

    {"op": "invoices", "rounds": N}           build invoices N times (each its own period key)
    {"op": "payouts", "rounds": N}            build payouts N times
    {"op": "approve", "ids": [...]}           approve these pending conversions, one transaction each
    {"op": "reverse", "ids": [...]}           reverse these approved conversions, one transaction each
"""

from __future__ import annotations

import json
import sys
from typing import Any

from network.auth import SYSTEM
from network.billing import jobs as billing_jobs
from network.clock import now_utc
from network.config import from_env
from network.conversions import service as conversions
from network.conversions.models import Conversion
from network.db import Database
from network.payouts import jobs as payout_jobs


def main() -> None:
    settings = from_env()
    database = Database(settings.database_url)
    print("ready", flush=True)
    command = json.loads(sys.stdin.readline())
    result: Any = []
    if command["op"] == "invoices":
        for n in range(command["rounds"]):
            result += billing_jobs.build_invoices(database, run_key=f"race-{n}-{now_utc().isoformat()}")
    elif command["op"] == "payouts":
        for _ in range(command["rounds"]):
            result += payout_jobs.build(database, settings).built
    else:
        for conversion_id in command["ids"]:
            with database.session_scope() as session:
                if command["op"] == "approve":
                    conversion = session.get(Conversion, conversion_id)
                    assert conversion is not None
                    conversions.transition(session, conversion, "approved", None, actor="race", at=now_utc())
                else:
                    conversions.change_status(
                        session, SYSTEM, conversion_id, status="reversed", reason="refund", now=now_utc()
                    )
            result.append(conversion_id)
    print(json.dumps(result), flush=True)
    database.dispose()


if __name__ == "__main__":
    main()
