"""What the postback path reads of customers and coupons: a customer's binding, a coupon by its code.

Read only for a postback that carries `customer_id` without a click, or `coupon`; a postback with a
click id and neither reads nothing here. Built once: executed with parameters only.

API: `Bound`, `bound`, `CouponRef`, `coupon_by_code`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from network.customers import rules
from network.customers.models import Coupon, Customer


@dataclass(frozen=True, slots=True)
class Bound:
    """A customer's binding as a postback attributes to it."""

    id: int
    link_id: int
    offer_id: int
    partner_id: int
    bound_at: dt.datetime


@dataclass(frozen=True, slots=True)
class CouponRef:
    """A coupon as a postback attributes to it."""

    id: int
    code: str
    link_id: int
    offer_id: int
    partner_id: int


_BOUND = select(Customer.id, Customer.link_id, Customer.offer_id, Customer.partner_id, Customer.bound_at).where(
    Customer.brand_id == bindparam("brand_id"), Customer.customer_id == bindparam("customer_id")
)
_COUPON = select(Coupon.id, Coupon.code, Coupon.link_id, Coupon.offer_id, Coupon.partner_id).where(
    Coupon.brand_id == bindparam("brand_id"), Coupon.code_key == bindparam("code_key")
)


def bound(session: Session, brand_id: int, customer_id: str) -> Bound | None:
    """Return the brand's binding of `customer_id`, or None."""
    row = session.execute(_BOUND, {"brand_id": brand_id, "customer_id": customer_id}).first()
    return Bound(*row) if row is not None else None


def coupon_by_code(session: Session, brand_id: int, code: str) -> CouponRef | None:
    """Return the brand's coupon spelt `code` in any case, or None (also for text no code can be)."""
    if rules.code_problem(code) is not None:
        return None
    row = session.execute(_COUPON, {"brand_id": brand_id, "code_key": rules.code_key(code)}).first()
    return CouponRef(*row) if row is not None else None
