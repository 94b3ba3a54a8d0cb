"""Each role's home page (placeholders naming the user until the consoles come; the partner's is in
network.portal.partner), and `/`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.portal.common import principal, role_required

blp = Blueprint("home", __name__)

HOMES = {
    Role.ADMIN: "portal.home.admin",
    Role.FINANCE: "portal.finance.payout_list",
    Role.BRAND: "portal.home.brand",
    Role.PARTNER: "portal.partner.home",
}


@blp.get("/")
def index() -> Any:
    """Send a signed-in user to its role's home, anyone else to sign in."""
    if not current_user.is_authenticated:
        return redirect(url_for("portal.account.sign_in"))
    return redirect(url_for(HOMES[Role(current_user.role)]))


@blp.get("/brand/")
@role_required(Role.BRAND)
def brand() -> Any:
    """The brand's home (its console comes in a later issue)."""
    me = accounts.get_brand(web.session(), principal(), current_user.brand_id)
    return render_template("home/brand.html", brand=me)


@blp.get("/admin/")
@role_required(Role.ADMIN)
def admin() -> Any:
    """The admin's home: links to applications and invitations."""
    return render_template("home/admin.html")
