"""The admin's home: how many sign-ups wait, how much is stuck, and the way to each part of the console."""

from __future__ import annotations

from typing import Any

from flask import render_template

from network import web
from network.accounts import users
from network.deadletters import service as deadletters
from network.deliveries.models import RETRYABLE
from network.portal.admin.common import admin_only, blp
from network.portal.admin.stuck import failing_deliveries, jobs
from network.portal.common import principal

#: Beyond this many, the home says "N or more" (the list pages show them all).
COUNT_UP_TO = 100


@blp.get("/")
@admin_only
def home() -> Any:
    """Counts of what needs the admin, each linking to its page."""
    found = jobs()
    context = {
        "applications": len(users.list_applications(web.session(), principal())),
        "letters": sum(deadletters.counts(web.session(), principal()).values()),
        "deliveries": {s: len(failing_deliveries(s, COUNT_UP_TO)) for s in RETRYABLE},
        "count_up_to": COUNT_UP_TO,
        "failing_jobs": [j for j in found if j["status"] is not None and _failing(j["status"])],
    }
    return render_template("admin/home.html", **context)


def _failing(status: Any) -> bool:
    """A job whose last failure is later than its last success."""
    if status.last_failure_at is None:
        return False
    return status.last_success_at is None or status.last_failure_at > status.last_success_at
