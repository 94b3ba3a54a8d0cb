"""Attribution beyond the click: a postback's coupon, and a customer's binding when it has no click.

A postback without a click id that carries a coupon or a customer_id is attributed to the coupon's
partner (a coupon of the brand for the offer), else to the partner its customer is bound to; it
needs a txn_id (its dedupe key) and an authenticated brand (its token, or offer_id with a
signature). A postback with a click id and a coupon of another partner goes to the click, or to the
coupon when the offer's `coupon_rule` says so; the conversion records both. The window, geo and
speed checks are the click's and do not apply to a customer's or a coupon's conversion; the offer's
and partner's status, currency, recurring terms, caps and hold do (conversions/rules.py).

API: `without_click`, `with_coupon`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from network.conversions import attribution, intake
from network.conversions.attribution import Attribution, Plan
from network.conversions.context import ContextCache, LinkContext, read_context
from network.conversions.intake import Answer, Params, Received, Trace, write_trace
from network.customers import lookup
from network.customers import rules as customer_rules
from network.errors import ValidationError


def _context(session: Session, contexts: ContextCache | None, link_id: int, event: str | None) -> LinkContext | None:
    if contexts is None:
        return read_context(session, link_id, event)
    return contexts.get(session, link_id, event)


def _coupon(session: Session, brand_id: int, data: Params, offer_id: int | None) -> lookup.CouponRef | None:
    """Return the brand's coupon the postback names, when it is one for `offer_id` (any offer: None)."""
    if data.coupon is None:
        return None
    coupon = lookup.coupon_by_code(session, brand_id, data.coupon)
    if coupon is None or (offer_id is not None and coupon.offer_id != offer_id):
        return None
    return coupon


def without_click(
    session: Session,
    *,
    contexts: ContextCache | None,
    received: Received,
    data: Params,
    trace: Trace,
    now: dt.datetime,
) -> Answer | Plan:
    """Attribute a postback without a click id by its coupon, else its customer; answer `rejected` when neither is known."""
    if data.txn_id is None:
        raise ValidationError(
            "txn_id is required for a conversion without a click id (a coupon's or a customer's): it is its dedupe key",
            field="txn_id",
        )
    brand_id = trace.brand_id = intake.authenticated_brand(session, received, data, None, now)
    coupon = _coupon(session, brand_id, data, data.offer_id)
    binding = None
    if coupon is not None:
        link_id, attributed_by = coupon.link_id, "coupon"
    else:
        binding = lookup.bound(session, brand_id, data.customer_id) if data.customer_id is not None else None
        if binding is not None and data.offer_id is not None and binding.offer_id != data.offer_id:
            binding = None
        link_id, attributed_by = (binding.link_id, "customer") if binding is not None else (0, "")
    link = _context(session, contexts, link_id, data.event) if link_id else None
    if link is None:
        reason = customer_rules.UNKNOWN_COUPON if data.coupon is not None else customer_rules.UNKNOWN_CUSTOMER
        trace.status, trace.reason = "rejected", reason
        write_trace(session, trace, at=now)
        return Answer(None, "rejected", reason)
    plan = attribution.plan(Attribution(None, link), data=data, trace=trace, now=now, pixel=False)
    plan.attributed_by = attributed_by
    plan.coupon = coupon.code if coupon is not None else None
    plan.bound_at = binding.bound_at if binding is not None else None
    return plan


def with_coupon(
    session: Session, *, contexts: ContextCache | None, found: Attribution, data: Params, brand_id: int
) -> tuple[Attribution, str, str | None]:
    """Return the attribution of a postback with a click id and a coupon: the click's, or the coupon's when
    the offer's coupon_rule gives another partner's coupon the conversion; with how, and the coupon recorded."""
    coupon = _coupon(session, brand_id, data, found.link.offer_id)
    if coupon is None:
        return found, "click", None
    wins = customer_rules.coupon_wins(
        rule=found.link.coupon_rule, click_partner_id=found.link.partner_id, coupon_partner_id=coupon.partner_id
    )
    link = _context(session, contexts, coupon.link_id, data.event) if wins else None
    if link is None:
        return found, "click", coupon.code
    return Attribution(found.ref, link), "coupon", coupon.code
