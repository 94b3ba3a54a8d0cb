"""Payouts: the list (awaiting approval first) with its totals per currency and filters, bulk approve, hold
and cancel behind a confirmation stating the count and the sum, and one payout's page with its entries,
its history and its decisions.

Every decision goes through `network.payouts.service.decide`, the API's: the transitions allowed, the
conditional update and the audit line are its own.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import flash, redirect, render_template, request, url_for

from network import web
from network.errors import DomainError
from network.partners import service as partners
from network.payouts import rules
from network.payouts import service as payouts
from network.payouts.models import Payout
from network.portal.common import principal
from network.portal.finance import reads
from network.portal.finance.base import (
    PAGE,
    amount,
    blp,
    digits,
    finance_required,
    is_htmx,
    last_id_if_full,
    next_link,
    sums_in_words,
)
from network.portal.finance.forms import ACTION_WORDS, STATUS_WORDS, BulkForm, DecisionForm, PayoutFilters
from network.portal.partner_offers import render_block

#: The list's filters a bulk decision returns to.
_KEPT = ("status", "partner_id", "run_id")
#: Partners offered in the list's filter.
_PARTNER_CHOICES = 500


def _filters() -> tuple[PayoutFilters, bool]:
    form = PayoutFilters(request.args)
    listed = partners.list_partners(web.session(), principal(), limit=_PARTNER_CHOICES)
    form.partner_id.choices = [("", "Any partner"), *[(str(p.id), f"{p.name} (#{p.id})") for p in listed]]
    return form, form.validate()


def _query(form: PayoutFilters) -> dict[str, Any]:
    return {
        "status": form.status.data or None,
        "partner_id": int(form.partner_id.data) if form.partner_id.data else None,
        "run_id": int(form.run_id.data) if form.run_id.data else None,
    }


def _rows(items: list[Payout]) -> list[dict[str, Any]]:
    names = reads.partner_names(web.session(), principal(), [p.partner_id for p in items])
    return [
        {
            "payout": p,
            "partner": names.get(p.partner_id, f"#{p.partner_id}"),
            "amount": amount(p.amount_minor, p.currency),
            "status": STATUS_WORDS.get(p.status, p.status),
            "actions": [a for a in ACTION_WORDS if rules.action_target(a, p.status)],
        }
        for p in items
    ]


@blp.get("/")
@finance_required
def payout_list() -> Any:
    """The payouts the filters select (awaiting approval unless told), their totals per currency, bulk decisions."""
    form, valid = _filters()
    context: dict[str, Any] = {"form": form, "bulk": BulkForm(formdata=None), "back": urlencode(_kept(request.args))}
    if not valid:
        return render_template("finance/payouts.html", rows=[], totals=[], next_url=None, ticked=False, **context), 400
    session, me = web.session(), principal()
    query = _query(form)
    items = payouts.list_payouts(session, me, **query, limit=PAGE, after=digits("after"))
    totals = [
        {"currency": t.currency, "count": t.count, "amount": amount(t.amount_minor, t.currency)}
        for t in reads.payout_totals(session, me, **query)
    ]
    return render_template(
        "finance/payouts.html",
        rows=_rows(items),
        totals=totals,
        next_url=next_link(".payout_list", last_id_if_full(items)),
        ticked=request.args.get("tick") == "all",
        **context,
    )


def _kept(args: Any) -> dict[str, str]:
    return {k: v for k, v in args.items() if k in _KEPT and v and len(v) < 40}


def _back() -> str:
    """The list as the person left it: only its known filters are kept (never a URL from the form)."""
    kept: dict[str, Any] = _kept(dict(parse_qsl(request.form.get("back", ""))))
    return url_for(".payout_list", **kept)


def _selected(ids: list[int], action: str) -> tuple[list[Payout], list[Payout]]:
    """The ticked payouts the decision applies to, and those it does not apply to (their status forbids it)."""
    found = [payouts.get_payout(web.session(), principal(), payout_id) for payout_id in sorted(set(ids))]
    movable = [p for p in found if rules.action_target(action, p.status)]
    return movable, [p for p in found if p not in movable]


def _sums(items: list[Payout]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for p in items:
        sums[p.currency] += p.amount_minor
    return dict(sums)


@blp.post("/payouts/bulk")
@finance_required
def bulk() -> Any:
    """First answer a confirmation stating the count and sum; once confirmed, decide each payout."""
    form = BulkForm()
    if not form.validate_on_submit():
        refusals = [f"Nothing was changed: {error}." for errors in form.errors.values() for error in errors]
        if is_htmx():  # said in place: a redirect would swap the whole page into the confirmation's place
            return render_block("finance/confirm.html", "confirmation", refusals=refusals, back_url=_back())
        for refusal in refusals:
            flash(refusal)
        return redirect(_back())
    action, note = form.action.data or "", form.note.data or None
    movable, stuck = _selected(form.payout_id.data or [], action)
    if form.confirmed.data != "yes":
        return _confirmation(form, action, movable, stuck)
    done, refused = [], []
    for payout in movable:
        try:
            done.append(payouts.decide(web.session(), principal(), payout.id, action, note=note))
        except DomainError as exc:
            refused.append(f"#{payout.id}: {exc.message}")
    verb = _past(action)
    flash(f"{verb} {_count(len(done))}: {sums_in_words(_sums(done))}.")
    for line in refused + [f"#{p.id}: it is {STATUS_WORDS.get(p.status, p.status).lower()}" for p in stuck]:
        flash(f"Not changed: {line}.")
    return redirect(_back())


def _confirmation(form: BulkForm, action: str, movable: list[Payout], stuck: list[Payout]) -> Any:
    confirm = BulkForm(formdata=None, action=action, note=form.note.data, confirmed="yes")
    context = {
        "action": action,
        "verb": ACTION_WORDS[action],
        "count": _count(len(movable)),
        "sum": sums_in_words(_sums(movable)),
        "rows": _rows(movable),
        "stuck": _rows(stuck),
        "confirm": confirm,
        "back": request.form.get("back", ""),
        "back_url": _back(),
    }
    if is_htmx():
        return render_block("finance/confirm.html", "confirmation", **context)
    return render_template("finance/confirm.html", **context)


def _count(n: int) -> str:
    return f"{n} payout" + ("" if n == 1 else "s")


def _past(action: str) -> str:
    return {"approve": "Approved", "hold": "Held", "unhold": "Released", "cancel": "Canceled"}[action]


@blp.get("/payouts/<int:payout_id>")
@finance_required
def payout_page(payout_id: int) -> Any:
    """One payout: its figures, the entries it settles, its history (the audit log) and the decisions open to it."""
    session, me = web.session(), principal()
    payout = payouts.get_payout(session, me, payout_id)
    entries = reads.payout_entries(session, me, payout)
    history = reads.history(session, me, "payout", payout_id)
    return render_template(
        "finance/payout.html",
        payout=payout,
        partner=reads.partner_names(session, me, [payout.partner_id]).get(payout.partner_id, ""),
        amount=amount(payout.amount_minor, payout.currency),
        status=STATUS_WORDS.get(payout.status, payout.status),
        entries=[(e, amount(e.amount_minor, e.currency)) for e in entries],
        history=[(h, reads.describe(h.details)) for h in history],
        people=reads.actor_names(session, me, [h.actor for h in history]),
        actions=[a for a in ACTION_WORDS if rules.action_target(a, payout.status)],
        action_words=ACTION_WORDS,
        form=DecisionForm(formdata=None),
    )


@blp.post("/payouts/<int:payout_id>/decide")
@finance_required
def decide(payout_id: int) -> Any:
    """Approve, hold, release or cancel this payout (the service answers 409 when its status does not allow it)."""
    form = DecisionForm()
    if not form.validate_on_submit():
        flash("Nothing was changed: " + "; ".join(e for errors in form.errors.values() for e in errors) + ".")
        return redirect(url_for(".payout_page", payout_id=payout_id))
    action = form.action.data or ""
    try:
        payout = payouts.decide(web.session(), principal(), payout_id, action, note=form.note.data or None)
    except DomainError as exc:
        if exc.status == 404:
            raise
        flash(f"Not changed: {exc.message}.")
    else:
        flash(f"{_past(action)} payout #{payout.id}: {amount(payout.amount_minor, payout.currency)}.")
    return redirect(url_for(".payout_page", payout_id=payout_id))
