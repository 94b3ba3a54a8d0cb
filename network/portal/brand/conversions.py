"""The brand's conversions: a filtered list, one conversion with its history, and status changes (approve,
reject, reverse) of one or many with a reason, each through the conversions service as the API makes them.

A bulk change is one transaction: an id the brand may not see makes the whole request 404 and changes
nothing; a conversion whose status does not allow the change is left as it is and named in the answer.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import DateField, Form, IntegerField, SelectField, StringField, SubmitField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, NumberRange, Optional, ValidationError

from network import web
from network.auth import Role
from network.clock import now_utc
from network.conversions import service as conversions
from network.conversions.models import Conversion
from network.conversions.schemas import STATUSES, dump_conversion
from network.errors import Conflict
from network.offers import service as offers
from network.portal.brand.common import after_arg, blp, midnight
from network.portal.common import principal, role_required
from network.schemas import column_length

#: Rows per page, and the most conversions one bulk change may name.
PAGE = 100

#: What each fraud flag (conversions.rules.FLAGS) means, for the brand deciding on a held conversion.
FLAG_WORDS = {
    "too_fast": "Came sooner than twice the offer's minimum seconds after its click: allowed, but held for review.",
    "bot": "The click came from a browser that looked like a bot or crawler.",
    "repeat_visitor": "The visitor had clicked the same link in the 24 hours before (a repeat visitor).",
    "pixel": "Reported by the browser pixel, not your server: any page can fire it, so a person confirms it.",
    "self_referral": "The click came from an address the partner itself signed in or called the API from.",
    "anomaly": "The partner's conversion rate, or its time from click to conversion, was far from the offer's "
    "other partners' (the median) over the period shown.",
    "over_credit": "Your account was over its credit limit: held until you pay, then approved.",
}
#: What each rejection reason means (SPEC §5, in the order they are checked).
REASON_WORDS = {
    "unknown_click": "The click id was unknown, forged or of another brand's offer.",
    "offer_inactive": "The offer was not active.",
    "partner_not_approved": "The partner was not approved to run the offer.",
    "out_of_window": "It came after the offer's conversion window (or before its click).",
    "currency_mismatch": "Its currency was not the offer's.",
    "geo_mismatch": "The click came from a country the offer does not target.",
    "too_fast": "It came sooner after its click than the offer's minimum seconds.",
    "cap_reached": "A cap of the offer had no room left.",
    "recurring_ended": "Its customer's recurring terms on this event had ended (N months, or first N conversions).",
}
_CHANGES = [SelectChoice("approved", "Approve"), SelectChoice("rejected", "Reject"),
            SelectChoice("reversed", "Reverse (refund, chargeback)")]  # fmt: skip


class ConversionFilters(Form):
    """The list's filters: a GET form, so no CSRF token (it changes nothing)."""

    offer_id = SelectField("Offer", default="", validate_choice=False)
    partner_id = IntegerField("Partner id", [Optional(), NumberRange(min=1, max=2**31 - 1)])
    status = SelectField(
        "Status",
        default="",
        choices=[SelectChoice("", "Any status"), *[SelectChoice(s, s.capitalize()) for s in STATUSES]],
    )
    start = DateField("From (UTC day)", [Optional()])
    end = DateField("To (UTC day, included)", [Optional()])

    def validate_offer_id(self, field: Any) -> None:
        if field.data and not str(field.data).isdigit():
            raise ValidationError("choose an offer from the list")

    def validate_end(self, field: Any) -> None:
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("must not be before From")


class StatusForm(FlaskForm):
    # Not "status": the filters beside it have one, and two fields would share an id.
    new_status = SelectField("New status", choices=_CHANGES)
    reason = StringField(
        "Reason",
        [Length(max=column_length(Conversion.reason))],
        description="Why: the partner sees it beside the conversion. Required to reject or reverse.",
    )
    submit = SubmitField("Change the status")

    def validate_reason(self, field: Any) -> None:
        if self.new_status.data in ("rejected", "reversed") and not (field.data or "").strip():
            raise ValidationError("say why you reject or reverse")


def _filters(form: ConversionFilters) -> dict[str, Any]:
    return {
        "offer_id": int(form.offer_id.data) if form.offer_id.data else None,
        "partner_id": form.partner_id.data,
        "status": form.status.data or None,
        "since": midnight(form.start.data) if form.start.data else None,
        "until": midnight(form.end.data + dt.timedelta(days=1)) if form.end.data else None,
    }


def _shown(session: Any, me: Any, items: list[Conversion]) -> list[dict[str, Any]]:
    keys = conversions.event_keys(session, [c.event_id for c in items])
    return [dump_conversion(c, me, event_key=keys.get(c.event_id, "")) for c in items]


def _list_page(form: ConversionFilters, status_form: StatusForm, http_status: int = 200) -> Any:
    session, me = web.session(), principal()
    names = {o.id: o.name for o in offers.list_offers(session, me, limit=500)}
    form.offer_id.choices = [
        SelectChoice("", "Any offer"),
        *[SelectChoice(str(i), f"{n} (#{i})") for i, n in names.items()],
    ]
    items: list[Conversion] = []
    if form.validate():
        items = conversions.list_conversions(session, me, **_filters(form), limit=PAGE, after=after_arg())
    elif http_status == 200:
        http_status = 400
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "after" and v}
    next_url = url_for(".conversions_list", **args, after=items[-1].id) if len(items) == PAGE else None
    return render_template(
        "brand/conversions.html",
        form=form,
        status_form=status_form,
        items=_shown(session, me, items),
        names=names,
        next_url=next_url,
        flag_words=FLAG_WORDS,
        reason_words=REASON_WORDS,
    ), http_status


@blp.get("/conversions")
@role_required(Role.BRAND)
def conversions_list() -> Any:
    """The brand's conversions, filtered by offer, partner, status and UTC days, each ticked for a bulk change."""
    return _list_page(ConversionFilters(request.args), StatusForm(formdata=None))


def _change(ids: list[int], status: str, reason: str | None) -> tuple[list[int], list[str]]:
    """Change each conversion's status; return those changed and why the others were not."""
    session, me, now = web.session(), principal(), now_utc()
    changed, refused = [], []
    for conversion_id in ids:
        try:
            conversions.change_status(session, me, conversion_id, status=status, reason=reason, now=now)
        except Conflict as exc:
            refused.append(f"#{conversion_id}: {exc.message}")
        else:
            changed.append(conversion_id)
    return changed, refused


def _ids() -> list[int]:
    values = request.form.getlist("ids")
    if not values or len(values) > PAGE or not all(v.isascii() and v.isdigit() and len(v) <= 9 for v in values):
        return []
    return sorted({int(v) for v in values})


@blp.post("/conversions/status")
@role_required(Role.BRAND)
def change_many() -> Any:
    """Approve, reject or reverse the ticked conversions with one reason."""
    form = StatusForm()
    ids = _ids()
    if not ids:
        form.form_errors.append(f"tick between 1 and {PAGE} conversions")
    if not form.validate() or not ids:
        return _list_page(ConversionFilters(request.args), form, 422)
    changed, refused = _change(ids, form.new_status.data or "", (form.reason.data or "").strip() or None)
    flash(f"{len(changed)} conversion{'s' * (len(changed) != 1)} {form.new_status.data}.")
    for line in refused:
        flash(f"Not changed: {line}")
    kept: dict[str, Any] = {k: v for k, v in request.args.items() if v}
    return redirect(url_for(".conversions_list", **kept))


@blp.route("/conversions/<int:conversion_id>", methods=["GET", "POST"])
@role_required(Role.BRAND)
def conversion(conversion_id: int) -> Any:
    """One conversion: its figures, flags explained, history, and a status change."""
    session, me = web.session(), principal()
    found = conversions.get_conversion(session, me, conversion_id)
    form = StatusForm() if request.method == "POST" else StatusForm(formdata=None)
    if request.method == "POST" and form.validate():
        changed, refused = _change(
            [conversion_id], form.new_status.data or "", (form.reason.data or "").strip() or None
        )
        flash(f"#{conversion_id}: {form.new_status.data}." if changed else f"Not changed: {refused[0]}")
        return redirect(url_for(".conversion", conversion_id=conversion_id))
    history = conversions.history(session, me, conversion_id)
    (shown,) = _shown(session, me, [found])
    return render_template(
        "brand/conversion.html",
        c=shown,
        history=history,
        form=form,
        flag_words=FLAG_WORDS,
        reason_words=REASON_WORDS,
    ), 422 if form.errors else 200
