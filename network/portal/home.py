"""Each role's home page (placeholders naming the user until the consoles come; the partner's is in
network.portal.partner, the brand's in network.portal.brand), and `/`."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user

from network.auth import Role
from network.portal.common import role_required

blp = Blueprint("home", __name__)

HOMES = {
    Role.ADMIN: "portal.admin.home",
    Role.FINANCE: "portal.home.finance",
    Role.BRAND: "portal.brand.home",
    Role.PARTNER: "portal.partner.home",
}


@blp.get("/")
def index() -> Any:
    """Send a signed-in user to its role's home, anyone else to sign in."""
    if not current_user.is_authenticated:
        return redirect(url_for("portal.account.sign_in"))
    return redirect(url_for(HOMES[Role(current_user.role)]))


@blp.get("/finance/")
@role_required(Role.FINANCE)
def finance() -> Any:
    """The finance home (its console comes in a later issue)."""
    return render_template("home/finance.html")
