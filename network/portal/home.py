"""`/`, which sends each role to its home (network.portal.admin, brand, finance and partner)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, url_for
from flask_login import current_user

from network.auth import Role

blp = Blueprint("home", __name__)

HOMES = {
    Role.ADMIN: "portal.admin.home",
    Role.FINANCE: "portal.finance.payout_list",
    Role.BRAND: "portal.brand.home",
    Role.PARTNER: "portal.partner.home",
}


@blp.get("/")
def index() -> Any:
    """Send a signed-in user to its role's home, anyone else to sign in."""
    if not current_user.is_authenticated:
        return redirect(url_for("portal.account.sign_in"))
    return redirect(url_for(HOMES[Role(current_user.role)]))
