"""Payout runs: run one now (and read its result), the payout jobs' schedule with their last success and
failure, the last runs and their outcomes, and a run's CSV export as an authenticated download.

A run is `network.payouts.jobs.run_payouts`, what the API's `POST /payout-runs`, the CLI and the scheduler
run: mature, build, settle, each phase in transactions of its own.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, send_file, url_for

from network import scheduler, web
from network.db import MAX_PAGE
from network.payouts import jobs, jobstatus, settlement
from network.portal.common import principal
from network.portal.finance import reads
from network.portal.finance.base import PAGE, amount, blp, digits, finance_required, last_id_if_full, next_link
from network.portal.finance.forms import STATUS_WORDS, RunForm

#: The scheduled jobs that move payouts, in the order a payout meets them.
PAYOUT_JOBS = ("mature_holds", "build_payouts", "settle_payouts", "recover_payouts")


def _schedule() -> list[dict[str, Any]]:
    """Each payout job: what it does, when it runs next, and its last success and failure."""
    statuses = {s.job_id: s for s in jobstatus.list_jobs(web.session(), principal(), limit=MAX_PAGE)}
    described = {row["id"]: row for row in scheduler.describe(web.settings())}
    return [{**described[job_id], "status": statuses.get(job_id)} for job_id in PAYOUT_JOBS if job_id in described]


@blp.get("/runs")
@finance_required
def runs() -> Any:
    """Run now, the schedule and the last runs (newest first, paged by `before`)."""
    found = reads.list_runs(web.session(), principal(), limit=PAGE, before=digits("before"))
    return render_template(
        "finance/runs.html",
        form=RunForm(),
        schedule=_schedule(),
        runs=found,
        next_url=next_link(".runs", last_id_if_full(found), cursor="before"),
    )


@blp.post("/runs")
@finance_required
def run_now() -> Any:
    """Mature holds, build payouts and settle approved ones now; then show the run's result."""
    if not RunForm().validate_on_submit():
        abort(400)
    me = principal()
    # The run commits in phases of its own and calls the gateway between them: the request's transaction
    # (on SQLite, its write lock) must not stay open meanwhile, as in the API's POST /payout-runs.
    web.session().close()
    summary = jobs.run_payouts(web.database(), web.settings(), principal=me)
    flash(
        f"Run #{summary.run_id}: {summary.matured} holds matured, {len(summary.built)} payouts built (awaiting "
        f"approval), {len(summary.paid)} paid, {len(summary.failed)} failed, {len(summary.unknown)} with an "
        "unknown outcome."
    )
    return redirect(url_for(".run_page", run_id=summary.run_id))


def _payout_rows(items: list[Any], names: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "payout": p,
            "partner": names.get(p.partner_id, f"#{p.partner_id}"),
            "amount": amount(p.amount_minor, p.currency),
            "status": STATUS_WORDS.get(p.status, p.status),
        }
        for p in items
    ]


@blp.get("/runs/<int:run_id>")
@finance_required
def run_page(run_id: int) -> Any:
    """One run: its counts, the payouts it built, those it sent with their outcome, and its export."""
    session, me = web.session(), principal()
    detail = reads.get_run(session, me, run_id, limit=MAX_PAGE)
    names = reads.partner_names(session, me, [p.partner_id for p in detail.built + detail.sent])
    history = reads.history(session, me, "payout_run", run_id)
    return render_template(
        "finance/run.html",
        run=detail.run,
        built=_payout_rows(detail.built, names),
        sent=_payout_rows(detail.sent, names),
        limit=MAX_PAGE,
        history=[(h, reads.describe(h.details)) for h in history],
        people=reads.actor_names(session, me, [detail.run.actor, *[h.actor for h in history]]),
    )


@blp.get("/runs/<int:run_id>/export")
@finance_required
def run_export(run_id: int) -> Any:
    """Download the CSV a manual run exported (the payouts it paid); 404 when it has none."""
    path = settlement.export_file(web.session(), principal(), run_id)
    return send_file(path, mimetype="text/csv", as_attachment=True, download_name=f"payouts-run-{run_id}.csv")
