"""Customers (bound by their first attributed conversion) and coupon codes: what brands, partners and admins do with them.

A brand sees and changes its own; a partner sees its own customers and coupons, never another
partner's; admin and finance see all. Moving or unbinding a customer is audited (signals.py).

API: `create_coupon`, `list_coupons`, `get_coupon`, `delete_coupon`, `list_customers`, `get_customer`,
`move_customer`, `unbind_customer`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from network.auth import Principal, Role, require
from network.customers import rules
from network.customers.models import Coupon, Customer, CustomerCount
from network.customers.signals import customer_changed
from network.db import DEFAULT_PAGE, MAX_PAGE, paged, where_given
from network.errors import Conflict, NotFound, ValidationError
from network.offers import rules as offer_rules
from network.offers import service as offers
from network.offers.models import AccessStatus, Offer
from network.partners.models import Partner, PartnerStatus
from network.tracking import service as tracking


def _visible(principal: Principal, model: Any) -> Any:
    """Return a SELECT of the rows of `model` (Customer, Coupon) the principal may see."""
    query = select(model)
    if principal.role is Role.BRAND:
        return query.where(model.brand_id == principal.brand_id)
    if principal.role is Role.PARTNER:
        return query.where(model.partner_id == principal.partner_id)
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return query
    return query.where(model.id.is_(None))  # pragma: no cover - every role is handled above


def _one(session: Session, principal: Principal, model: Any, row_id: int, what: str) -> Any:
    """Return the row of `model` with this id that the principal may see, or 404 naming `what`."""
    row = session.scalars(_visible(principal, model).where(model.id == row_id)).one_or_none()
    if row is None:
        raise NotFound(f"{what} not found")
    return row


def _check_partner(session: Session, offer: Offer, partner_id: int) -> None:
    """Raise unless the partner exists (400) and has access to the offer (409): active, and public or approved."""
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise ValidationError("unknown partner", field="partner_id")
    access = offers.partner_access(session, offer, partner_id)
    if not offer_rules.has_access(
        partner_active=partner.status == PartnerStatus.ACTIVE.value,
        visibility=offer.visibility,
        approved=access is not None and access.status == AccessStatus.APPROVED.value,
    ):
        raise Conflict("this partner may not run the offer (not active, or not approved)", code="partner_not_approved")


# ---- coupons -------------------------------------------------------------------------------------


def create_coupon(session: Session, principal: Principal, *, offer_id: int, partner_id: int, code: str) -> Coupon:
    """Create a coupon code for one of the brand's offers, assigned to a partner; 409 when the brand has the code."""
    require(principal, Role.ADMIN, Role.BRAND)
    problem = rules.code_problem(code)
    if problem:
        raise ValidationError(f"code {problem}", field="code")
    offer = offers.own_offer(session, principal, offer_id)
    _check_partner(session, offer, partner_id)
    key = rules.code_key(code)
    taken = Conflict(f"the brand already has the coupon code {code!r} (codes are unique whatever the case)",
                     code="coupon_taken")  # fmt: skip
    if session.scalar(select(Coupon.id).where(Coupon.brand_id == offer.brand_id, Coupon.code_key == key)):
        raise taken
    link = tracking.link_for(session, offer_id=offer.id, partner_id=partner_id, new=True)
    coupon = Coupon(brand_id=offer.brand_id, offer_id=offer.id, partner_id=partner_id, link_id=link.id, code=code,
                    code_key=key)  # fmt: skip
    try:
        with session.begin_nested():  # two brands' users creating one code at once: one wins
            session.add(coupon)
    except IntegrityError as exc:
        raise taken from exc
    return coupon


def list_coupons(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    partner_id: int | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[Coupon]:
    """Return a page of the coupons the principal may see, by id."""
    query = where_given(_visible(principal, Coupon), (Coupon.offer_id, offer_id), (Coupon.partner_id, partner_id))
    return list(session.scalars(paged(query, Coupon.id, limit=min(limit, MAX_PAGE), after=after)))


def get_coupon(session: Session, principal: Principal, coupon_id: int) -> Coupon:
    """Return a coupon the principal may see, or 404."""
    return _one(session, principal, Coupon, coupon_id, "coupon")  # type: ignore[no-any-return]


def delete_coupon(session: Session, principal: Principal, coupon_id: int) -> None:
    """Delete a coupon (its brand, admin): its code attributes nothing from now on; its conversions keep the code."""
    require(principal, Role.ADMIN, Role.BRAND)
    session.delete(get_coupon(session, principal, coupon_id))
    session.flush()


# ---- customers -----------------------------------------------------------------------------------


def list_customers(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    partner_id: int | None = None,
    customer_id: str | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[Customer]:
    """Return a page of the bound customers the principal may see, by id."""
    query = where_given(
        _visible(principal, Customer),
        (Customer.offer_id, offer_id),
        (Customer.partner_id, partner_id),
        (Customer.customer_id, customer_id),
    )
    return list(session.scalars(paged(query, Customer.id, limit=min(limit, MAX_PAGE), after=after)))


def get_customer(session: Session, principal: Principal, customer_id: int) -> Customer:
    """Return a bound customer (by the binding's id) the principal may see, or 404."""
    return _one(session, principal, Customer, customer_id, "customer")  # type: ignore[no-any-return]


def move_customer(
    session: Session, principal: Principal, customer_id: int, *, partner_id: int, now: dt.datetime
) -> Customer:
    """Bind a customer to another partner (its brand, admin), on the same offer; audited."""
    require(principal, Role.ADMIN, Role.BRAND)
    customer = get_customer(session, principal, customer_id)
    offer = session.get(Offer, customer.offer_id)
    assert offer is not None
    _check_partner(session, offer, partner_id)
    before = customer.partner_id
    if partner_id != before:
        link = tracking.link_for(session, offer_id=offer.id, partner_id=partner_id)
        customer.partner_id, customer.link_id, customer.moved_at = partner_id, link.id, now
        session.flush()
    customer_changed.send(
        session=session, actor=principal.label, action="customer.moved", customer_id=customer.id, at=now,
        details={"brand_id": customer.brand_id, "customer_id": customer.customer_id, "from_partner_id": before,
                 "to_partner_id": partner_id},
    )  # fmt: skip
    return customer


def unbind_customer(session: Session, principal: Principal, customer_id: int, *, now: dt.datetime) -> None:
    """Unbind a customer (its brand, admin): later postbacks without a click no longer attribute it; audited.

    Its counts of "first N conversions" go too; its next attributed conversion binds it afresh.
    """
    require(principal, Role.ADMIN, Role.BRAND)
    customer = get_customer(session, principal, customer_id)
    details = {"brand_id": customer.brand_id, "customer_id": customer.customer_id, "partner_id": customer.partner_id,
               "offer_id": customer.offer_id}  # fmt: skip
    session.execute(
        delete(CustomerCount).where(
            CustomerCount.brand_id == customer.brand_id, CustomerCount.customer_id == customer.customer_id
        )
    )
    session.delete(customer)
    session.flush()
    customer_changed.send(
        session=session, actor=principal.label, action="customer.unbound", customer_id=customer_id, at=now,
        details=details,
    )  # fmt: skip
