"""Payout runs in the finance console: run now (the payouts domain's own run) and read its result, the payout
jobs' schedule with their last success and failure, the last runs, and a run's CSV as an authenticated
download."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from sqlalchemy import select

from network.payouts import jobstatus
from network.payouts.models import AuditLog, Payout, PayoutRun
from tests.payouts.support import NOW, check_invariants
from tests.portal.conftest import csrf_token
from tests.portal.finance.conftest import FINANCE, page, rows, text


def _approve(client, payout_id: int) -> None:
    token = csrf_token(page(client, f"/finance/payouts/{payout_id}"))
    r = client.post(f"/finance/payouts/{payout_id}/decide", data={"action": "approve", "csrf_token": token})
    assert r.status_code == 302


def _run_now(client):
    token = csrf_token(page(client, "/finance/runs"))
    return client.post("/finance/runs", data={"csrf_token": token})


def test_the_runs_page_shows_the_schedule_and_the_last_runs(finance, money, session):
    build_run = money.payouts[("Deal Blog", "USD")].run_id
    html = page(finance, "/finance/runs")
    jobs = {r[0]: r for r in rows(html) if len(r) == 6}
    assert list(jobs) == ["mature_holds", "build_payouts", "settle_payouts", "recover_payouts"]
    # The build's schedule is PAYOUT_SCHEDULE (default Monday 00:00 UTC); NOW is a Monday noon.
    assert "day_of_week='mon'" in jobs["build_payouts"][2] and jobs["build_payouts"][3] == "2026-03-16 00:00"
    assert jobs["settle_payouts"][4:] == ["never", "none"]
    (last,) = [r for r in rows(html) if len(r) == 11]
    # Run, kind, by, started, finished, matured, built, paid, failed, unknown, export.
    assert last[0] == f"#{build_run}" and last[1] == "build" and last[6:10] == ["3", "0", "0", "0"]


def test_a_jobs_last_success_and_failure_show_with_the_reason(finance, money, session):
    info = jobstatus.JobInfo("settle_payouts", "Send approved payouts", "cron[minute='*/5']", None)
    jobstatus.record_success(
        session, info, period="p1", finished=NOW - dt.timedelta(minutes=10), duration_ms=12, outcome="paid=2"
    )
    jobstatus.record_failure(
        session, info, period="p2", at=NOW - dt.timedelta(minutes=5), reason="OperationalError: gone", tries=2
    )
    session.flush()
    (settle,) = [r for r in rows(page(finance, "/finance/runs")) if r[0] == "settle_payouts"]
    assert settle[4] == "2026-03-09 11:50: paid=2"
    assert settle[5] == "2026-03-09 11:55: OperationalError: gone (2 failed tries since the last success)"


def test_run_now_pays_the_approved_payouts_and_shows_the_result_and_its_export(finance, money, session, exports):
    coupons = money.payouts[("Coupon Club", "USD")]
    _approve(finance, coupons.id)
    r = _run_now(finance)
    run = session.scalars(select(PayoutRun).order_by(PayoutRun.id.desc())).first()
    assert r.status_code == 302 and r.headers["Location"] == f"/finance/runs/{run.id}"
    html = page(finance, r.headers["Location"])
    assert f"Run #{run.id}: 0 holds matured, 0 payouts built (awaiting approval), 1 paid, 0 failed" in html
    assert f"Started by</dt><dd>{FINANCE}" in html
    sent = [r for r in rows(html) if len(r) == 5 and r[0].startswith("#")]
    assert sent == [[f"#{coupons.id}", "Coupon Club", "30.00 USD", "Paid", ""]]
    link = re.search(r'href="(/finance/runs/\d+/export)"', html)
    assert link is not None and link.group(1) == f"/finance/runs/{run.id}/export"
    download = finance.get(link.group(1))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == f"attachment; filename=payouts-run-{run.id}.csv"
    assert download.headers["Cache-Control"] == "no-store"
    table = list(csv.DictReader(io.StringIO(download.get_data(as_text=True))))
    download.close()
    assert [(t["payout_id"], t["partner_name"], t["amount"], t["currency"]) for t in table] == [
        (str(coupons.id), "Coupon Club", "30.00", "USD")
    ]
    session.expire_all()
    assert session.get(Payout, coupons.id).status == "paid"
    # The run is the finance user's, in the run and in the audit log.
    assert run.actor.startswith("finance:user:")
    assert session.scalars(select(AuditLog.actor).where(AuditLog.action == "payout.paid")).all() == [run.actor]
    check_invariants(session)
    # The runs page lists it first, with its outcome and its CSV.
    first = next(r for r in rows(page(finance, "/finance/runs")) if len(r) == 11)
    assert first[0] == f"#{run.id}" and first[7] == "1" and first[10] == f"CSV of run #{run.id}"


def test_run_now_needs_its_csrf_token_and_a_run_without_export_is_404(finance, money, session):
    before = session.scalars(select(PayoutRun.id)).all()
    r = finance.post("/finance/runs")
    assert r.status_code == 400 and "Form expired" in text(r)
    assert session.scalars(select(PayoutRun.id)).all() == before
    build_run = money.payouts[("Deal Blog", "USD")].run_id
    assert finance.get(f"/finance/runs/{build_run}/export").status_code == 404
    assert finance.get("/finance/runs/999999").status_code == 404


def test_a_run_page_shows_the_payouts_it_built(finance, money):
    build_run = money.payouts[("Deal Blog", "USD")].run_id
    html = page(finance, f"/finance/runs/{build_run}")
    built = [r[1:4] for r in rows(html) if len(r) == 5 and r[0].startswith("#")]
    assert sorted(built) == [
        ["Coupon Club", "30.00 USD", "Pending approval"],
        ["Deal Blog", "19.50 USD", "Pending approval"],
        ["Deal Blog", "60.00 EUR", "Pending approval"],
    ]
    assert "This run sent no payout." in html
    assert [r[2] for r in rows(html) if len(r) == 4] == ["run.built"]
