"""The brand's bound customers: whose partner each is, and moving one to another partner or unbinding it.

Through the customers service as the signed-in brand, as the API (moves and unbinds are audited there):
another brand's customer is not found.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, SubmitField
from wtforms.validators import DataRequired, NumberRange

from network import web
from network.auth import Role
from network.clock import now_utc
from network.customers import service as customers
from network.db import MAX_PAGE
from network.errors import Conflict, ValidationError
from network.portal.brand.common import after_arg, blp
from network.portal.common import principal, role_required


class MoveForm(FlaskForm):
    move_partner = IntegerField(
        "Partner id", [DataRequired("give the partner's id"), NumberRange(min=1, max=2**31 - 1)]
    )
    submit = SubmitField("Move")


class UnbindForm(FlaskForm):
    submit = SubmitField("Unbind")


def _page(move: MoveForm, status: int = 200) -> Any:
    session, me = web.session(), principal()
    items = customers.list_customers(session, me, limit=MAX_PAGE, after=after_arg())
    next_after = items[-1].id if len(items) == MAX_PAGE else None
    context = {"customers": items, "move": move, "unbind": UnbindForm(formdata=None), "next_after": next_after}
    return render_template("brand/customers.html", **context), status


@blp.get("/customers")
@role_required(Role.BRAND)
def customers_page() -> Any:
    """The brand's bound customers, each with its partner, and the forms that move or unbind it."""
    return _page(MoveForm(formdata=None))


@blp.post("/customers/<int:customer_id>/move")
@role_required(Role.BRAND)
def move_customer(customer_id: int) -> Any:
    """Bind a customer to another partner on the same offer (audited)."""
    form = MoveForm()
    if not form.validate():
        return _page(form, 422)
    try:
        customers.move_customer(web.session(), principal(), customer_id, partner_id=form.move_partner.data,
                                now=now_utc())  # fmt: skip
    except (ValidationError, Conflict) as exc:
        form.move_partner.errors = [*form.move_partner.errors, exc.message]
        return _page(form, 422)
    flash(f"The customer's later conversions go to partner #{form.move_partner.data}.")
    return redirect(url_for("portal.brand.customers_page"))


@blp.post("/customers/<int:customer_id>/unbind")
@role_required(Role.BRAND)
def unbind_customer(customer_id: int) -> Any:
    """Unbind a customer (audited): postbacks without a click no longer attribute it."""
    if not UnbindForm().validate_on_submit():
        abort(400)
    customers.unbind_customer(web.session(), principal(), customer_id, now=now_utc())
    flash("The customer is unbound.")
    return redirect(url_for("portal.brand.customers_page"))
