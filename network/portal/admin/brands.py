"""Brands: the list and a new brand; one brand with its users (and a link to invite one) and its API keys.

All through the accounts service as the signed-in admin, as `GET/POST /api/v1/brands`.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, url_for

from network import web
from network.accounts import service as accounts
from network.db import MAX_PAGE
from network.errors import ValidationError
from network.portal.admin.common import admin_only, blp, int_arg
from network.portal.admin.forms import BrandForm
from network.portal.admin.people import users_of
from network.portal.common import principal


def _list(form: BrandForm, status: int = 200) -> Any:
    found = accounts.list_brands(web.session(), principal(), limit=MAX_PAGE, after=int_arg("after"))
    next_after = found[-1].id if len(found) == MAX_PAGE else None
    return render_template("admin/brands.html", brands=found, form=form, next_after=next_after), status


@blp.get("/brands")
@admin_only
def brand_list() -> Any:
    """The brands, a page at a time, and the form to create one."""
    return _list(BrandForm())


@blp.post("/brands")
@admin_only
def create_brand() -> Any:
    """Create a brand (with its postback token), then show it to invite its first user."""
    form = BrandForm()
    if not form.validate():
        return _list(form, 422)
    try:
        brand = accounts.create_brand(
            web.session(),
            principal(),
            name=(form.name.data or "").strip(),
            currency=(form.currency.data or "").upper(),
            share_txn_id=bool(form.share_txn_id.data),
        )
    except ValidationError as exc:
        form.currency.errors = [exc.message]
        return _list(form, 422)
    flash(f"Brand {brand.name} is created: invite its first user.")
    return redirect(url_for("portal.admin.brand", brand_id=brand.id))


@blp.get("/brands/<int:brand_id>")
@admin_only
def brand(brand_id: int) -> Any:
    """One brand: its users, its API keys, and links to invite a user or issue a key for it."""
    session, me = web.session(), principal()
    found = accounts.get_brand(session, me, brand_id)
    context = {
        "brand": found,
        "users": users_of(session, me, brand_id=brand_id),
        "keys": accounts.list_keys(session, me, brand_id=brand_id, limit=MAX_PAGE),
    }
    return render_template("admin/brand.html", **context)
