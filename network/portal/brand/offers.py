"""The brand's offers: the list, the form that creates and edits every field, and status changes confirmed.

The form's input goes through the API's own schema and the offers service (`offer_forms`), so a refusal
is the API's message, shown beside its field. A status change is a GET that asks for confirmation and a
POST (with its CSRF token) that does it.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from marshmallow import ValidationError as SchemaError
from wtforms import SelectField, SubmitField
from wtforms.fields.choices import SelectChoice

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.db import DEFAULT_PAGE
from network.errors import ValidationError
from network.offers import rules as offer_rules
from network.offers import service as offers
from network.offers.models import Offer
from network.offers.rules import TRANSITIONS
from network.offers.schemas import dump_offer
from network.portal import offer_words
from network.portal.brand import offer_forms
from network.portal.brand.common import after_arg, blp, brand_id
from network.portal.brand.offer_forms import OfferForm
from network.portal.common import principal, role_required

#: What each status change does, told on its confirmation page.
ACTIONS = {
    "activate": "Partners may take links and send traffic; its conversions are paid.",
    "pause": "New clicks go to the fallback URL and new conversions are rejected (offer_inactive) until you "
    "activate it again.",
    "archive": "The offer closes for good: it cannot be changed or activated again.",
}
STATUSES = ("draft", "active", "paused", "archived")


class StatusFilter(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField(
        "Status", choices=[SelectChoice("", "Any status"), *[SelectChoice(s, s.capitalize()) for s in STATUSES]]
    )


class ConfirmForm(FlaskForm):
    submit = SubmitField("Confirm")


def actions_for(status: str) -> list[str]:
    """The status changes an offer of `status` allows (the offers rules' table)."""
    return [action for action, (sources, _target) in TRANSITIONS.items() if status in sources]


@blp.get("/offers")
@role_required(Role.BRAND)
def offer_list() -> Any:
    """The brand's offers with their status, terms and the changes each allows; filtered by status."""
    session, me = web.session(), principal()
    form = StatusFilter(request.args)
    status = form.status.data if form.status.data in STATUSES else None
    found = offers.list_offers(session, me, status=status, after=after_arg())
    rows = []
    for offer in found:
        out = dump_offer(offer, me)
        out["terms"] = offer_words.terms(out, offer.caps)
        out["actions"] = actions_for(offer.status)
        rows.append(out)
    more = len(found) == DEFAULT_PAGE
    return render_template(
        "brand/offers.html", offers=rows, form=form, next_after=found[-1].id if more else None, status=status
    )


def _form_page(form: OfferForm, offer: dict[str, Any] | None, status: int = 200) -> Any:
    return render_template(
        "brand/offer_form.html", form=form, offer=offer, actions=actions_for(offer["status"]) if offer else []
    ), status


def _grown(form: OfferForm) -> bool:
    """Add a blank event or cap row when one of the Add buttons was pressed; return whether it was."""
    if form.add_event.data:
        form.events.append_entry()
    elif form.add_cap.data:
        form.caps.append_entry()
    else:
        return False
    return True


def _save(form: OfferForm, offer_id: int | None) -> Offer | None:
    """Validate with the API's schema and save through the service; None (the errors on the form) if refused."""
    data, rows = offer_forms.offer_input(form, creating=offer_id is None)
    session, me = web.session(), principal()
    try:
        loaded = offer_forms.load(data, creating=offer_id is None)
        if offer_id is None:
            return offers.create_offer(session, me, loaded)
        return offers.update_offer(session, me, offer_id, loaded)
    except SchemaError as exc:
        offer_forms.show_errors(form, exc, rows)
    except ValidationError as exc:
        offer_forms.show_errors(form, (exc.field or "", exc.message), rows)
    return None


@blp.route("/offers/new", methods=["GET", "POST"])
@role_required(Role.BRAND)
def new_offer() -> Any:
    """Create a draft offer; the form says what each field means and shows the API's refusals beside them."""
    if request.method == "GET":
        me = principal()
        brand = accounts.get_brand(web.session(), me, brand_id(me))
        form = OfferForm(formdata=None, data={"currency": brand.currency, "conversion_window_days": "30",
                                              "hold_days": "0", "min_seconds": "0",
                                              "hold_flags": offer_rules.hold_flags(None)})  # fmt: skip
        return _form_page(form, None)
    form = OfferForm()
    if not form.validate_on_submit():
        abort(400)
    if _grown(form):
        return _form_page(form, None)
    created = _save(form, None)
    if created is None:
        return _form_page(form, None, 422)
    flash(f"{created.name}: created as a draft. Activate it when it is ready.")
    return redirect(url_for("portal.brand.offer", offer_id=created.id))


@blp.route("/offers/<int:offer_id>", methods=["GET", "POST"])
@role_required(Role.BRAND)
def offer(offer_id: int) -> Any:
    """An offer's settings to edit, and the status changes it allows."""
    session, me = web.session(), principal()
    shown = dump_offer(offers.get_offer(session, me, offer_id), me)
    if request.method == "GET":
        return _form_page(OfferForm(formdata=None, data=offer_forms.prefill(shown)), shown)
    form = OfferForm()
    if not form.validate_on_submit():
        abort(400)
    if _grown(form):
        return _form_page(form, shown)
    saved = _save(form, offer_id)
    if saved is None:
        return _form_page(form, shown, 422)
    flash(f"{saved.name}: saved.")
    return redirect(url_for("portal.brand.offer", offer_id=offer_id))


@blp.route("/offers/<int:offer_id>/<any(activate, pause, archive):action>", methods=["GET", "POST"])
@role_required(Role.BRAND)
def change_status(offer_id: int, action: str) -> Any:
    """Ask to confirm a status change (GET), then make it (POST); one its status does not allow is 409."""
    session, me = web.session(), principal()
    found = offers.get_offer(session, me, offer_id)
    form = ConfirmForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template(
            "brand/confirm_status.html", offer=found, action=action, meaning=ACTIONS[action], form=form
        )
    changed = offers.change_status(session, me, offer_id, action)
    flash(f"{changed.name} is now {changed.status}.")
    return redirect(url_for("portal.brand.offer", offer_id=offer_id))
