"""API keys: the list by role, brand, partner or state; a new key shown once; a key revoked after confirming.

All through the accounts service as the signed-in admin, as `GET/POST /api/v1/keys` and `.../revoke`.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from wtforms.fields.choices import SelectChoice

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.db import MAX_PAGE
from network.errors import ValidationError
from network.portal.admin.common import admin_only, blp, choice_arg, int_arg
from network.portal.admin.forms import ConfirmForm, KeyForm
from network.portal.common import principal

ROLES = tuple(r.value for r in Role)
STATES = {"active": False, "revoked": True}


def _form() -> KeyForm:
    form = KeyForm()
    brands = accounts.list_brands(web.session(), principal(), limit=MAX_PAGE)
    form.brand_id.choices = [SelectChoice("", "(none)")] + [SelectChoice(str(b.id), b.name) for b in brands]
    if request.method == "GET":
        form.brand_id.data = int_arg("brand_id")
        form.partner_id.data = int_arg("partner_id")
        form.role.data = "brand" if form.brand_id.data else "partner" if form.partner_id.data else "admin"
    return form


def _page(form: KeyForm, status: int = 200) -> Any:
    session, me = web.session(), principal()
    filters: dict[str, Any] = {
        "role": choice_arg("role", ROLES),
        "brand_id": int_arg("brand_id"),
        "partner_id": int_arg("partner_id"),
    }
    state = choice_arg("state", STATES)
    found = accounts.list_keys(
        session, me, **filters, revoked=STATES.get(state or ""), limit=MAX_PAGE, after=int_arg("after")
    )
    brands = {b.id: b.name for b in accounts.list_brands(session, me, limit=MAX_PAGE)}
    context = {
        "keys": found,
        "brands": brands,
        "filters": {**filters, "state": state},
        "roles": ROLES,
        "next_after": found[-1].id if len(found) == MAX_PAGE else None,
        "form": form,
    }
    return render_template("admin/keys.html", **context), status


@blp.get("/keys")
@admin_only
def key_list() -> Any:
    """The keys (never the keys themselves), filtered by role, brand, partner or state, and the form to issue one."""
    return _page(_form())


@blp.post("/keys")
@admin_only
def issue_key() -> Any:
    """Issue a key and show it on this page only: it is stored hashed and never shown again."""
    form = _form()
    if not form.validate():
        return _page(form, 422)
    try:
        row, key = accounts.issue_key(
            web.session(),
            principal(),
            role=form.role.data or "",
            brand_id=form.brand_id.data,
            partner_id=form.partner_id.data,
            label=(form.label.data or "").strip() or None,
        )
    except ValidationError as exc:
        field = form._fields.get(exc.field or "", form.role)
        field.errors = [*field.errors, exc.message]
        return _page(form, 422)
    return render_template("admin/key_issued.html", key=key, row=row)


@blp.get("/keys/<int:key_id>/revoke")
@admin_only
def confirm_revoke(key_id: int) -> Any:
    """Ask before revoking: a revoked key stops working at once and for good."""
    row = accounts.get_key(web.session(), principal(), key_id)
    return render_template("admin/revoke.html", row=row, form=ConfirmForm(formdata=None))


@blp.post("/keys/<int:key_id>/revoke")
@admin_only
def revoke_key(key_id: int) -> Any:
    """Revoke a key at once (revoking a revoked key changes nothing)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    row = accounts.revoke_key(web.session(), principal(), key_id)
    flash(f"Key {row.prefix}… (#{row.id}) is revoked.")
    return redirect(url_for("portal.admin.key_list"))
