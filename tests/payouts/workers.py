"""A payout worker process for the concurrency tests. It prints "ready", then runs each command
read from stdin (one JSON object a line) and prints the result as one JSON line:

    {"op": "run"}                                          the payout job, then recovery
    {"op": "scheduler", "job": "build_payouts", "now": ISO}  one scheduler fire of a job
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from network.config import from_env
from network.db import Database


def main() -> None:
    settings = from_env()
    database = Database(settings.database_url)
    from network import scheduler
    from network.payouts import jobs

    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        result: Any
        if command["op"] == "run":
            summary = jobs.run_payouts(database, settings)
            recovered = jobs.recover_payouts(database, settings)
            result = {**summary.as_dict(), "recovered": recovered.as_dict()}
        else:
            now = dt.datetime.fromisoformat(command["now"])
            result = scheduler.run_job(database, settings, command["job"], now=now)
        print(json.dumps(result, default=str), flush=True)
    database.dispose()


if __name__ == "__main__":
    main()
