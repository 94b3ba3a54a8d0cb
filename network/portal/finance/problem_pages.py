"""Payouts that did not get paid: failed ones (their entries are back in the partner's balance) and those
sent whose outcome is unknown (still processing under their idempotency key), each with its reason, and
the two retries the payouts domain has for them.

- An unknown outcome is retried by `jobs.recover_payouts`, the scheduler's recovery: the same request with
  the same key, so a retry never pays twice; it takes only payouts whose settler's lease has run out.
- A failed payout is not sent again: its entries are available again, and `jobs.build` makes a new payout
  of them (awaiting approval), as the weekly build would.

The jobs record their runs as the system; the finance user who asked is written to the audit log here.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for

from network import web
from network.clock import now_utc
from network.payouts import jobs, ledger
from network.payouts import service as payouts
from network.payouts.models import Payout, PayoutStatus
from network.portal.common import principal
from network.portal.finance import reads
from network.portal.finance.base import PAGE, amount, blp, digits, finance_required, last_id_if_full, next_link
from network.portal.finance.forms import RebuildForm, RecoverForm


def _rows(items: list[Payout]) -> list[dict[str, Any]]:
    names = reads.partner_names(web.session(), principal(), [p.partner_id for p in items])
    now = now_utc()
    return [
        {
            "payout": p,
            "partner": names.get(p.partner_id, f"#{p.partner_id}"),
            "amount": amount(p.amount_minor, p.currency),
            "leased": p.leased_until is not None and p.leased_until > now,
        }
        for p in items
    ]


@blp.get("/problems")
@finance_required
def problems() -> Any:
    """Failed payouts and those whose outcome is unknown, with their reasons and the retries."""
    session, me = web.session(), principal()
    failed = payouts.list_payouts(
        session, me, status=PayoutStatus.FAILED.value, limit=PAGE, after=digits("failed_after")
    )
    unknown = payouts.list_payouts(
        session, me, status=PayoutStatus.PROCESSING.value, limit=PAGE, after=digits("unknown_after")
    )
    return render_template(
        "finance/problems.html",
        failed=_rows(failed),
        unknown=_rows(unknown),
        failed_next=next_link(".problems", last_id_if_full(failed), cursor="failed_after"),
        unknown_next=next_link(".problems", last_id_if_full(unknown), cursor="unknown_after"),
        recover_form=RecoverForm(),
        rebuild_form=RebuildForm(),
    )


@blp.post("/problems/recover")
@finance_required
def recover() -> Any:
    """Retry the payouts whose outcome is unknown and whose lease has run out, with their own keys."""
    if not RecoverForm().validate_on_submit():
        abort(400)
    me = principal()
    web.session().close()  # the recovery commits in phases and calls the gateway between them
    summary = jobs.recover_payouts(web.database(), web.settings())
    if not summary.run_id:
        flash(
            "Nothing to retry now: no payout waits for recovery (a payout being sent is retried once its lease ends)."
        )
        return redirect(url_for(".problems"))
    ledger.audit(
        web.session(),
        actor=me.label,
        action="run.recover_requested",
        object_type="payout_run",
        object_id=summary.run_id,
        details={"paid": len(summary.paid), "failed": len(summary.failed), "unknown": len(summary.unknown)},
    )
    flash(
        f"Run #{summary.run_id} retried them: {len(summary.paid)} paid, {len(summary.failed)} failed, "
        f"{len(summary.unknown)} still unknown."
    )
    return redirect(url_for(".run_page", run_id=summary.run_id))


@blp.post("/problems/rebuild")
@finance_required
def rebuild() -> Any:
    """Build payouts again from the available balances (a failed payout's entries are among them)."""
    if not RebuildForm().validate_on_submit():
        abort(400)
    me = principal()
    web.session().close()  # the build runs in a transaction of its own
    summary = jobs.build(web.database(), web.settings(), principal=me)
    flash(f"Run #{summary.run_id} built {len(summary.built)} payouts: they wait for approval.")
    return redirect(url_for(".payout_list", run_id=summary.run_id))
