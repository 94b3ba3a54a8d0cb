"""Partners' money: the partners, one partner's balance and ledger with a manual adjustment (with its memo),
the ledger as CSV, and the audit log of every money decision (who, when, what) with its CSV.

Balances, entries and adjustments are `network.payouts.ledger`'s, the API's; the CSV downloads are
answered only to a signed-in finance user or admin, like every page here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from network import money, web
from network.db import MAX_PAGE
from network.errors import ValidationError
from network.partners import service as partners
from network.payouts import ledger
from network.payouts.models import LedgerEntry

# The one CSV-injection rule: the payout export's (settlement.py), used on every free-text cell.
from network.payouts.settlement import _cell as free_text
from network.portal.common import principal
from network.portal.finance import reads
from network.portal.finance.base import (
    PAGE,
    blp,
    csv_download,
    digits,
    finance_required,
    last_id_if_full,
    next_link,
)
from network.portal.finance.forms import AdjustmentForm, AuditFilters, LedgerFilters

#: The most rows a CSV download holds (the newest audit rows; a ledger's oldest entries).
CSV_ROWS = 100_000


@blp.get("/partners")
@finance_required
def partner_list() -> Any:
    """Every partner, with a link to its ledger (paged by `after`)."""
    found = partners.list_partners(web.session(), principal(), limit=PAGE, after=digits("after"))
    return render_template(
        "finance/partners.html", partners=found, next_url=next_link(".partner_list", last_id_if_full(found))
    )


def _ledger_filters() -> tuple[LedgerFilters, dict[str, Any]]:
    form = LedgerFilters(request.args)
    valid = form.validate()
    return form, {"currency": form.currency.data or None, "kind": form.kind.data or None} if valid else {}


def _ledger_page(partner_id: int, adjustment: AdjustmentForm, status: int = 200) -> Any:
    session, me = web.session(), principal()
    partner = partners.get_partner(session, me, partner_id)
    filters, query = _ledger_filters()
    if filters.errors:
        status = 400
    entries = ledger.list_entries(session, me, partner_id, limit=PAGE, after=digits("after"), **query)
    balances = [
        {
            "currency": r["currency"],
            **{k: money.format_amount(v, r["currency"]) for k, v in r.items() if k != "currency"},
        }
        for r in ledger.balances(session, me, partner_id)
    ]
    if not adjustment.is_submitted():
        # The partner's own currency first: an adjustment in a currency it does not earn in is a slip.
        adjustment.currency.data = balances[0]["currency"] if balances else "USD"
    history = reads.history(session, me, "partner", partner_id)
    return render_template(
        "finance/ledger.html",
        partner=partner,
        balances=balances,
        entries=[(e, money.format_amount(e.amount_minor, e.currency)) for e in entries],
        next_url=next_link(".ledger_page", last_id_if_full(entries), partner_id=partner_id),
        filters=filters,
        csv_url=url_for(".ledger_csv", partner_id=partner_id, **{k: v for k, v in query.items() if v}),
        form=adjustment,
        history=[(h, reads.describe(h.details)) for h in history],
        people=reads.actor_names(session, me, [h.actor for h in history]),
    ), status


@blp.get("/partners/<int:partner_id>")
@finance_required
def ledger_page(partner_id: int) -> Any:
    """A partner's balance per currency, its ledger (filtered, paged), adjustments and their audit lines."""
    return _ledger_page(partner_id, AdjustmentForm(formdata=None))


@blp.post("/partners/<int:partner_id>/adjustments")
@finance_required
def adjust(partner_id: int) -> Any:
    """Book a signed manual correction with its memo; a refused amount is shown beside its field."""
    form = AdjustmentForm()
    if not form.validate_on_submit():
        return _ledger_page(partner_id, form, 400)
    session, me = web.session(), principal()
    try:
        entry = ledger.add_adjustment(
            session,
            me,
            partner_id,
            currency=form.currency.data or "",
            amount=(form.amount.data or "").strip(),
            memo=form.memo.data or "",
        )
    except ValidationError as exc:
        getattr(form, exc.field or "amount", form.amount).errors.append(exc.message.removeprefix("amount: "))
        return _ledger_page(partner_id, form, 400)
    flash(f"Adjustment #{entry.id} booked: {money.format_amount(entry.amount_minor, entry.currency)} {entry.currency}.")
    return redirect(url_for(".ledger_page", partner_id=partner_id))


def _all_entries(partner_id: int, query: dict[str, Any]) -> Iterator[LedgerEntry]:
    after, sent = None, 0
    while sent < CSV_ROWS:
        found = ledger.list_entries(web.session(), principal(), partner_id, limit=MAX_PAGE, after=after, **query)
        yield from found
        sent += len(found)
        if len(found) < MAX_PAGE:
            return
        after = found[-1].id


@blp.get("/partners/<int:partner_id>/ledger.csv")
@finance_required
def ledger_csv(partner_id: int) -> Any:
    """Download a partner's ledger (the page's filters applied), oldest first."""
    partners.get_partner(web.session(), principal(), partner_id)
    _, query = _ledger_filters()
    rows = (
        [
            e.id,
            e.created_at.isoformat(),
            e.kind,
            e.currency,
            money.format_amount(e.amount_minor, e.currency),
            e.conversion_id or "",
            e.offer_id or "",
            e.payout_id or "",
            free_text(e.memo or ""),
        ]
        for e in _all_entries(partner_id, query)
    )
    header = ["entry_id", "booked_at", "kind", "currency", "amount", "conversion_id", "offer_id", "payout_id", "memo"]
    return csv_download(f"ledger-partner-{partner_id}.csv", header, rows)


# ---- the audit log -------------------------------------------------------------------------------


def _audit_filters() -> tuple[AuditFilters, dict[str, Any] | None]:
    form = AuditFilters(request.args)
    actions = reads.audit_actions(web.session(), principal())
    form.action.choices = [("", "Any action"), *[(a, a) for a in actions]]
    if not form.validate():
        return form, None
    return form, {
        "action": form.action.data or None,
        "object_type": form.object_type.data or None,
        "object_id": form.object_id.data or None,
        "actor": (form.actor.data or "").strip() or None,
    }


@blp.get("/audit")
@finance_required
def audit() -> Any:
    """Every money decision and outcome, newest first: who, when, what, on which object (paged by `before`)."""
    form, query = _audit_filters()
    if query is None:
        return render_template("finance/audit.html", form=form, rows=[], people={}, next_url=None, csv_url=None), 400
    session, me = web.session(), principal()
    found = reads.audit_entries(session, me, **query, limit=PAGE, before=digits("before"))
    return render_template(
        "finance/audit.html",
        form=form,
        csv_url=url_for(".audit_csv", **{k: v for k, v in query.items() if v}),
        rows=[(h, reads.describe(h.details)) for h in found],
        people=reads.actor_names(session, me, [h.actor for h in found]),
        next_url=next_link(".audit", last_id_if_full(found), cursor="before"),
    )


@blp.get("/audit.csv")
@finance_required
def audit_csv() -> Any:
    """Download the audit log (the page's filters applied), newest first."""
    form, query = _audit_filters()
    if query is None:
        return render_template("finance/audit.html", form=form, rows=[], people={}, next_url=None, csv_url=None), 400
    session, me = web.session(), principal()
    found = reads.audit_entries(session, me, **query, limit=CSV_ROWS)
    people = reads.actor_names(session, me, [h.actor for h in found])
    rows = (
        [
            h.id,
            h.at.isoformat(),
            free_text(h.actor),
            free_text(people.get(h.actor, "")),
            free_text(h.action),
            h.object_type,
            h.object_id,
            free_text(reads.describe(h.details)),
        ]
        for h in found
    )
    header = ["id", "at", "actor", "person", "action", "object_type", "object_id", "details"]
    return csv_download("audit-log.csv", header, rows)
