"""Partner applications to approve or reject, and invitations of brand, finance and admin users."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from network import web
from network.accounts import service as accounts
from network.accounts import users
from network.db import MAX_PAGE
from network.errors import Conflict, ValidationError
from network.portal.admin.common import admin_only, blp, int_arg
from network.portal.common import link, principal, send_after_commit, settings
from network.portal.forms import DecisionForm, InviteForm


@blp.get("/applications")
@admin_only
def applications() -> Any:
    """List the pending partner applications, each with approve and reject buttons."""
    pending = users.list_applications(web.session(), principal())
    return render_template("admin/applications.html", applications=pending, form=DecisionForm())


@blp.post("/applications/<int:application_id>")
@admin_only
def decide(application_id: int) -> Any:
    """Approve or reject one application, then tell the partner."""
    form = DecisionForm()
    if not form.validate_on_submit() or not (form.approve.data or form.reject.data):
        flash("Choose approve or reject.")
        return redirect(url_for("portal.admin.partner_list"))
    approve = bool(form.approve.data)
    partner = users.decide_application(web.session(), principal(), application_id, approve=approve)
    if partner.email:
        if approve:
            body = f"Your partner account is approved. Sign in: {link(url_for('portal.account.sign_in'))}\n"
        else:
            body = "We are sorry: your application to the network was not accepted.\n"
        send_after_commit(to=partner.email, subject="Your application", body=body)
    flash(f"{partner.name}: {'approved' if approve else 'rejected'}.")
    return redirect(url_for("portal.admin.partner_list"))


def _invite_form() -> InviteForm:
    form = InviteForm()
    brands = accounts.list_brands(web.session(), principal(), limit=MAX_PAGE)
    form.brand_id.choices = [SelectChoice("", "(none)")] + [SelectChoice(str(b.id), b.name) for b in brands]
    return form


@blp.route("/invitations", methods=["GET", "POST"])
@admin_only
def invitations() -> Any:
    """Invite a brand, finance or admin user: the invitee chooses a password from the mailed link."""
    form = _invite_form()
    if request.method == "GET" and int_arg("brand_id"):
        form.role.data, form.brand_id.data = "brand", int_arg("brand_id")
    if not form.validate_on_submit():
        return render_template("admin/invite.html", form=form), 400 if form.errors else 200
    try:
        user, token = users.invite(
            web.session(),
            principal(),
            email=form.email.data or "",
            role=form.role.data or "",
            brand_id=form.brand_id.data,
            secret=settings().secret_key,
        )
    except (ValidationError, Conflict) as exc:
        return render_template("admin/invite.html", form=form, error=exc.message), 400
    hours = settings().invite_link_hours
    body = (
        f"You are invited to the network as {user.role}. Choose your password here (the link works once, "
        f"for {hours} hours):\n{link(url_for('portal.account.invitation', token=token))}\n"
    )
    send_after_commit(to=user.email, subject="Your invitation", body=body)
    flash(f"Invitation sent to {user.email}.")
    return redirect(url_for("portal.admin.invitations"))
