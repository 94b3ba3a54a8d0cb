"""Each role's home page (a placeholder naming the user until the portal pages come), and `/`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from network import web
from network.accounts import service as accounts
from network.auth import Role
from network.partners import service as partners
from network.portal.common import principal, role_required

blp = Blueprint("home", __name__)

HOMES = {Role.ADMIN: "admin", Role.FINANCE: "finance", Role.BRAND: "brand", Role.PARTNER: "partner"}


@blp.get("/")
def index() -> Any:
    """Send a signed-in user to its role's home, anyone else to sign in."""
    if not current_user.is_authenticated:
        return redirect(url_for("portal.account.sign_in"))
    return redirect(url_for(f"portal.home.{HOMES[Role(current_user.role)]}"))


@blp.get("/partner/")
@role_required(Role.PARTNER)
def partner() -> Any:
    """The partner's home: who it is and whether its application is approved."""
    me = partners.get_partner(web.session(), principal(), current_user.partner_id)
    return render_template("home/partner.html", partner=me)


@blp.get("/brand/")
@role_required(Role.BRAND)
def brand() -> Any:
    """The brand's home (its console comes in a later issue)."""
    me = accounts.get_brand(web.session(), principal(), current_user.brand_id)
    return render_template("home/brand.html", brand=me)


@blp.get("/finance/")
@role_required(Role.FINANCE)
def finance() -> Any:
    """The finance home (its console comes in a later issue)."""
    return render_template("home/finance.html")


@blp.get("/admin/")
@role_required(Role.ADMIN)
def admin() -> Any:
    """The admin's home: links to applications and invitations."""
    return render_template("home/admin.html")
