"""What is stuck, for an operator: dead-lettered rows by writer, postback deliveries that failed or were
dead-lettered (to send again), and each scheduled job with its next run, last success and last failure.

All through the dead letters, deliveries and job status services as the signed-in admin, as through the API.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for

from network import scheduler, web
from network.clock import now_utc
from network.db import MAX_PAGE
from network.deadletters import service as deadletters
from network.deliveries import service as deliveries
from network.deliveries.models import RETRYABLE
from network.payouts import jobstatus
from network.portal.admin.common import admin_only, blp, choice_arg, int_arg
from network.portal.admin.forms import ConfirmForm
from network.portal.common import principal, settings

#: Deliveries shown per status on the summary page.
SUMMARY_ROWS = 20


def jobs() -> list[dict[str, Any]]:
    """Each declared job with its status row's last runs (a job that never ran has none yet)."""
    status = {row.job_id: row for row in jobstatus.list_jobs(web.session(), principal(), limit=MAX_PAGE)}
    now = now_utc()
    return [{**job, "status": status.get(job["id"])} for job in scheduler.describe(settings(), now)]


def failing_deliveries(status: str, limit: int, after: int | None = None) -> list[Any]:
    return deliveries.list_deliveries(web.session(), principal(), status=status, limit=limit, after=after)


@blp.get("/stuck")
@admin_only
def stuck() -> Any:
    """Dead letters by writer, the latest failed and dead-lettered deliveries, and the jobs' last runs."""
    context = {
        "letters": deadletters.counts(web.session(), principal()),
        "deliveries": {s: failing_deliveries(s, SUMMARY_ROWS) for s in RETRYABLE},
        "jobs": jobs(),
        "retry": ConfirmForm(formdata=None),
    }
    return render_template("admin/stuck.html", **context)


@blp.get("/dead-letters")
@admin_only
def dead_letters() -> Any:
    """Dead letters of one writer or all, oldest first, with why each was refused and what it held."""
    session, me = web.session(), principal()
    counts = deadletters.counts(session, me)
    source = choice_arg("source", counts)
    found = deadletters.list_dead_letters(session, me, source=source, limit=MAX_PAGE, after=int_arg("after"))
    next_after = found[-1].id if len(found) == MAX_PAGE else None
    return render_template(
        "admin/dead_letters.html", letters=found, counts=counts, source=source, next_after=next_after
    )


@blp.get("/deliveries")
@admin_only
def delivery_list() -> Any:
    """Failed or dead-lettered postback deliveries (one status), oldest first, each to send again."""
    status = choice_arg("status", RETRYABLE) or RETRYABLE[-1]
    found = failing_deliveries(status, MAX_PAGE, int_arg("after"))
    next_after = found[-1].id if len(found) == MAX_PAGE else None
    return render_template(
        "admin/deliveries.html",
        deliveries=found,
        status=status,
        statuses=RETRYABLE,
        next_after=next_after,
        retry=ConfirmForm(formdata=None),
    )


@blp.post("/deliveries/<int:delivery_id>/retry")
@admin_only
def retry_delivery(delivery_id: int) -> Any:
    """Queue one failed or dead-lettered delivery for one more attempt by the delivery job."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    row = deliveries.retry_delivery(web.session(), principal(), delivery_id)
    flash(f"Delivery #{row.id} will be sent again.")
    return redirect(url_for("portal.admin.delivery_list", status=RETRYABLE[-1]))
