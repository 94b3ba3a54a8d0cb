"""Partners: the list by status with the sign-ups waiting, a partner created by hand (active, for one
onboarded by the network: give it a key), and one partner with its users and API keys, suspended or
activated again.

All through the partners and accounts services as the signed-in admin, as through the API.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from marshmallow import ValidationError as SchemaError

from network import web
from network.accounts import service as accounts
from network.accounts import users
from network.db import MAX_PAGE
from network.partners import service as partners
from network.partners.models import PartnerStatus
from network.partners.schemas import PartnerCreateSchema
from network.portal.admin.common import admin_only, blp, choice_arg, int_arg
from network.portal.admin.forms import PartnerForm, StatusForm
from network.portal.admin.people import users_of
from network.portal.common import principal
from network.portal.forms import DecisionForm

STATUSES = tuple(s.value for s in PartnerStatus)


@blp.get("/partners")
@admin_only
def partner_list() -> Any:
    """The partners (one status or all, a page at a time), the sign-ups waiting, and the form to create one."""
    return _list(PartnerForm())


def _list(create: PartnerForm, status_code: int = 200) -> Any:
    session, me = web.session(), principal()
    status = choice_arg("status", STATUSES)
    after = int_arg("after")
    found = partners.list_partners(session, me, status=status, limit=MAX_PAGE, after=after)
    context = {
        "partners": found,
        "status": status,
        "statuses": STATUSES,
        "next_after": found[-1].id if len(found) == MAX_PAGE else None,
        "applications": users.list_applications(session, me),
        "form": DecisionForm(formdata=None),
        "create": create,
    }
    return render_template("admin/partners.html", **context), status_code


@blp.post("/partners")
@admin_only
def create_partner() -> Any:
    """Create an active partner with the API's own checks (`POST /api/v1/partners`), then show it."""
    form = PartnerForm()
    if not form.validate():
        return _list(form, 422)
    try:
        given = PartnerCreateSchema().load({"name": form.name.data or "", "email": form.email.data or None})
    except SchemaError as exc:
        for name, messages in exc.normalized_messages().items():
            getattr(form, name).errors = list(messages) if isinstance(messages, list) else [str(messages)]
        return _list(form, 422)
    found = partners.create_partner(web.session(), principal(), **given)
    flash(f"Partner {found.name} is created: issue it an API key, or it signs up with its e-mail.")
    return redirect(url_for("portal.admin.partner", partner_id=found.id))


@blp.get("/partners/<int:partner_id>")
@admin_only
def partner(partner_id: int) -> Any:
    """One partner: its sign-up to decide or its status to change, its users and its API keys."""
    session, me = web.session(), principal()
    found = partners.get_partner(session, me, partner_id)
    form = StatusForm(formdata=None, status="active" if found.status != "active" else "suspended")
    waiting = [a for a in users.list_applications(session, me) if a.partner_id == partner_id]
    context = {
        "partner": found,
        "application": waiting[0] if waiting else None,
        "decision": DecisionForm(formdata=None),
        "users": users_of(session, me, partner_id=partner_id),
        "keys": accounts.list_keys(session, me, partner_id=partner_id, limit=MAX_PAGE),
        "form": form,
    }
    return render_template("admin/partner.html", **context)


@blp.post("/partners/<int:partner_id>/status")
@admin_only
def partner_status(partner_id: int) -> Any:
    """Suspend a partner (its users can no longer sign in) or activate it again."""
    form = StatusForm()
    if not form.validate_on_submit():
        abort(400)
    found = partners.set_status(web.session(), principal(), partner_id, form.status.data or "")
    flash(f"{found.name} is now {found.status}.")
    return redirect(url_for("portal.admin.partner", partner_id=partner_id))
