"""The brand's coupon codes: each assigned to a partner for one offer; create and delete them.

Through the customers service as the signed-in brand, as the API: another brand's offer or coupon is not
found, a code the brand has in any case is refused with the API's message.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange

from network import web
from network.auth import Role
from network.customers import service as customers
from network.db import MAX_PAGE
from network.errors import Conflict, ValidationError
from network.offers import service as offers
from network.portal.brand.common import blp, choices
from network.portal.common import principal, role_required
from network.portal.partner_forms import int_or_none


class CouponForm(FlaskForm):
    # Not validated against the choices: the service says whether the offer is the brand's (404 if not).
    coupon_offer = SelectField("Offer", [DataRequired("choose an offer")], coerce=int_or_none, validate_choice=False)
    coupon_partner = IntegerField(
        "Partner id", [DataRequired("give the partner's id"), NumberRange(min=1, max=2**31 - 1)],
        description="The partner whose sales the code brings.",
    )  # fmt: skip
    code = StringField(
        "Code", [DataRequired("give the code"), Length(max=64)],
        description="Letters, digits, - and _; one code per brand whatever the case.",
    )  # fmt: skip
    submit = SubmitField("Create the coupon")


class DeleteForm(FlaskForm):
    submit = SubmitField("Delete")


def _page(form: CouponForm, status: int = 200) -> Any:
    session, me = web.session(), principal()
    found = [o for o in offers.list_offers(session, me, limit=MAX_PAGE) if o.status != "archived"]
    form.coupon_offer.choices = choices((o.id, f"{o.name} (#{o.id})") for o in found)
    names = {o.id: o.name for o in found}
    items = customers.list_coupons(session, me, limit=MAX_PAGE)
    context = {"coupons": items, "names": names, "form": form, "delete": DeleteForm(formdata=None)}
    return render_template("brand/coupons.html", **context), status


@blp.get("/coupons")
@role_required(Role.BRAND)
def coupons() -> Any:
    """The brand's coupon codes, and the form that creates one."""
    return _page(CouponForm(formdata=None))


@blp.post("/coupons")
@role_required(Role.BRAND)
def create_coupon() -> Any:
    """Create a coupon code for an offer, assigned to a partner (the API's checks and messages)."""
    form = CouponForm()
    if not form.validate():
        return _page(form, 422)
    try:
        coupon = customers.create_coupon(
            web.session(), principal(), offer_id=form.coupon_offer.data, partner_id=form.coupon_partner.data,
            code=form.code.data.strip(),
        )  # fmt: skip
    except (ValidationError, Conflict) as exc:
        field = {"partner_id": form.coupon_partner, "offer_id": form.coupon_offer}.get(
            getattr(exc, "field", None) or "", form.coupon_partner if exc.code == "partner_not_approved" else form.code
        )
        field.errors = [*field.errors, exc.message]
        return _page(form, 422)
    flash(f"Coupon {coupon.code} is partner #{coupon.partner_id}'s.")
    return redirect(url_for("portal.brand.coupons"))


@blp.post("/coupons/<int:coupon_id>/delete")
@role_required(Role.BRAND)
def delete_coupon(coupon_id: int) -> Any:
    """Delete a coupon code: it attributes nothing from now on; its conversions keep it."""
    if not DeleteForm().validate_on_submit():
        abort(400)
    customers.delete_coupon(web.session(), principal(), coupon_id)
    flash("The coupon is deleted.")
    return redirect(url_for("portal.brand.coupons"))
