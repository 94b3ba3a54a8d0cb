"""The brand's partners: applications to its offers to approve or reject, invitations, per-partner payouts.

All through the offers service as the signed-in brand: another brand's offer, application or override is
not found, exactly as through the API.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, NumberRange, Optional, Regexp

from network import web
from network.auth import Role
from network.db import MAX_PAGE
from network.errors import ValidationError
from network.offers import service as offers
from network.offers.models import Offer
from network.offers.schemas import dump_override
from network.portal.brand.common import blp, choices
from network.portal.common import principal, role_required
from network.portal.partner_forms import int_or_none

_ID = [DataRequired("give the partner's id"), NumberRange(min=1, max=2**31 - 1)]


class DecisionForm(FlaskForm):
    approve = SubmitField("Approve")
    reject = SubmitField("Reject")


class InviteForm(FlaskForm):
    # Not validated against the choices: the service says whether the offer is the brand's (404 if not).
    invite_offer = SelectField(
        "Offer to invite to", [DataRequired("choose an offer")], coerce=int_or_none, validate_choice=False
    )
    invite_partner = IntegerField(
        "Partner id to invite", _ID, description="The partner's number, as it gave it to you."
    )
    submit = SubmitField("Invite")


class OverrideForm(FlaskForm):
    target = SelectField(
        "Offer and event", [Regexp(r"^\d{1,9}:", message="choose an offer and event")], validate_choice=False
    )
    override_partner = IntegerField("Partner id for the payout", _ID)
    payout = StringField(
        "Payout, flat", [Optional()], description="For CPA, CPL, CPI and hybrid events: what this partner earns."
    )
    payout_percent = StringField(
        "Payout, % of the sale", [Optional()], description="For revenue share and hybrid events."
    )
    submit = SubmitField("Set the payout")


class RemoveForm(FlaskForm):
    submit = SubmitField("Remove")


def _offers(session: Any, me: Any, offer_id: int | None) -> list[Offer]:
    if offer_id is not None:
        return [offers.get_offer(session, me, offer_id)]
    return offers.list_offers(session, me, limit=MAX_PAGE)


def _forms(found: list[Offer]) -> tuple[InviteForm, OverrideForm]:
    open_offers = [o for o in found if o.status != "archived"]
    invite = InviteForm()
    invite.invite_offer.choices = choices((o.id, f"{o.name} (#{o.id})") for o in open_offers)
    override = OverrideForm()
    override.target.choices = choices(
        (f"{o.id}:{e.key}", f"{o.name} (#{o.id}): {e.key}, {e.model}") for o in open_offers for e in o.events
    )
    return invite, override


def _page(
    invite: InviteForm, override: OverrideForm, found: list[Offer], offer_id: int | None, status: int = 200
) -> Any:
    session, me = web.session(), principal()
    rows = []
    for offer in found:
        access = offers.list_access(session, me, offer.id, limit=MAX_PAGE)
        overrides = [dump_override(o, offer) for o in offers.list_overrides(session, me, offer.id, limit=MAX_PAGE)]
        rows.append({"offer": offer, "access": access, "overrides": overrides})
    context = {
        "rows": rows,
        "overridden": any(row["overrides"] for row in rows),
        "offer_id": offer_id,
        "invite": invite,
        "override": override,
        "decision": DecisionForm(formdata=None),
        "remove": RemoveForm(formdata=None),
    }
    return render_template("brand/partners.html", **context), status


@blp.get("/partners")
@role_required(Role.BRAND)
def partners() -> Any:
    """Applications and invitations per offer (or one offer's), invitations and payout overrides."""
    offer_id = request.args.get("offer_id", type=int)
    found = _offers(web.session(), principal(), offer_id)
    invite, override = _forms(found)
    return _page(invite, override, found, offer_id)


@blp.post("/offers/<int:offer_id>/applications/<int:access_id>")
@role_required(Role.BRAND)
def decide(offer_id: int, access_id: int) -> Any:
    """Approve or reject one partner's application to one of the brand's offers."""
    form = DecisionForm()
    if not form.validate_on_submit() or not (form.approve.data or form.reject.data):
        abort(400)
    decision = "approve" if form.approve.data else "reject"
    access = offers.decide_access(web.session(), principal(), offer_id, access_id, decision)
    flash(f"Partner #{access.partner_id}: {access.status}.")
    return redirect(url_for("portal.brand.partners"))


@blp.post("/partners/invite")
@role_required(Role.BRAND)
def invite() -> Any:
    """Invite a partner to a private (or approval) offer: the invitation is its approval."""
    found = _offers(web.session(), principal(), None)
    invite_form, override = _forms(found)
    if not invite_form.validate():
        return _page(invite_form, override, found, None, 422)
    try:
        access = offers.invite(
            web.session(), principal(), invite_form.invite_offer.data, invite_form.invite_partner.data
        )
    except ValidationError as exc:
        invite_form.invite_partner.errors = [exc.message]
        return _page(invite_form, override, found, None, 422)
    flash(f"Partner #{access.partner_id} is invited to offer #{access.offer_id}.")
    return redirect(url_for("portal.brand.partners"))


@blp.post("/partners/overrides")
@role_required(Role.BRAND)
def set_override() -> Any:
    """Set one partner's payout for one event of an offer (the API's checks, a loss included)."""
    found = _offers(web.session(), principal(), None)
    invite_form, form = _forms(found)
    if not form.validate():
        return _page(invite_form, form, found, None, 422)
    offer_id, _, event = (form.target.data or "").partition(":")
    data: dict[str, Any] = {"partner_id": form.override_partner.data, "event": event}
    for name in ("payout", "payout_percent"):
        if (form[name].data or "").strip():
            data[name] = form[name].data.strip()
    try:
        offers.set_override(web.session(), principal(), int(offer_id), data)
    except ValidationError as exc:
        names = {"partner_id": "override_partner", "payout": "payout", "payout_percent": "payout_percent"}
        field = form._fields.get(names.get(exc.field or "", "target")) or form.target
        field.errors = [*field.errors, exc.message]
        return _page(invite_form, form, found, None, 422)
    flash(f"Partner #{form.override_partner.data} now earns its own payout on {event}.")
    return redirect(url_for("portal.brand.partners"))


@blp.post("/offers/<int:offer_id>/overrides/<int:override_id>/remove")
@role_required(Role.BRAND)
def remove_override(offer_id: int, override_id: int) -> Any:
    """Remove a per-partner payout: the partner earns the event's own again."""
    if not RemoveForm().validate_on_submit():
        abort(400)
    offers.delete_override(web.session(), principal(), offer_id, override_id)
    flash("The partner's own payout is removed.")
    return redirect(url_for("portal.brand.partners"))
