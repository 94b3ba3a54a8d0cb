"""A brand's billing terms, credit limit and prepayments: what finance sets, and where the brand stands.

A prepayment (a manual credit: money the brand paid ahead) is a negative `prepayment` entry in the
brand ledger, unbilled when booked: its next invoices draw it down as a credit line."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from sqlalchemy import true
from sqlalchemy.orm import Session

from network import money
from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.billing import ledger, rules, service
from network.billing.models import BrandBilling, BrandEntryKind
from network.clock import now_utc
from network.conversions import rules as conversion_rules
from network.conversions import service as conversions
from network.conversions.models import Conversion, ConversionStatus
from network.errors import NotFound, ValidationError
from network.offers import rules as offer_rules
from network.offers.models import Offer

#: What finance may change of a brand's billing, and nothing else.
_TERMS = ("payment_terms_days", "billing_email", "billing_address")


def _brand(session: Session, principal: Principal, brand_id: int) -> Brand:
    require(principal, Role.FINANCE, Role.ADMIN)
    brand = session.get(Brand, brand_id)
    if brand is None:
        raise NotFound("brand not found")
    return brand


def update_terms(session: Session, principal: Principal, brand_id: int, **changes: Any) -> BrandBilling:
    """Change a brand's payment terms, billing details or credit limit (`credit_limit`: major units, or None)."""
    brand = _brand(session, principal, brand_id)
    terms = service.terms_of(session, brand_id)
    for name in _TERMS:
        if name in changes:
            setattr(terms, name, changes[name])
    if "credit_limit" in changes:
        limit = changes["credit_limit"]
        try:
            terms.credit_limit_minor = None if limit is None else money.parse_amount(limit, brand.currency)
        except money.MoneyError as exc:
            raise ValidationError(f"credit_limit: {exc}", field="credit_limit") from exc
    session.flush()
    return terms


def credit_status(session: Session, brand_id: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return the brand's limit, what it owes against it (unbilled + invoiced, unpaid, in its currency) and whether it is over."""
    brand = session.get(Brand, brand_id)
    assert brand is not None
    limit = service.terms_of(session, brand_id).credit_limit_minor
    rows = service.balance_rows(session, brand_id, now=now or now_utc())
    exposure = sum(r["unbilled"] + r["invoiced"] for r in rows if r["currency"] == brand.currency)
    return {
        "currency": brand.currency,
        "limit_minor": limit,
        "exposure_minor": exposure,
        "over_limit": rules.over_credit(exposure, limit),
    }


def add_prepayment(
    session: Session, principal: Principal, brand_id: int, *, currency: str, amount: str, memo: str | None = None
) -> int:
    """Book money a brand paid ahead (finance, admin) as a credit its next invoices draw down; return the entry id."""
    _brand(session, principal, brand_id)
    try:
        minor = money.parse_amount(amount, currency)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc
    if minor <= 0:
        raise ValidationError("amount: a prepayment must be more than zero", field="amount")
    row = ledger.entry_row(
        brand_id=brand_id, currency=currency, kind=BrandEntryKind.PREPAYMENT, amount_minor=-minor,
        key=f"prepayment-{secrets.token_hex(12)}", at=now_utc(), memo=memo or f"prepayment by {principal.label}",
    )  # fmt: skip
    (entry_id,) = ledger.book(session, [row])
    return entry_id


def refresh_holds(session: Session, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Hold the brands over their credit limit and release those back under it (the check_credit job)."""
    from sqlalchemy import select, update

    now = now or now_utc()
    limited = set(session.scalars(select(BrandBilling.brand_id).where(BrandBilling.credit_limit_minor.is_not(None))))
    held = set(session.scalars(select(Brand.id).where(Brand.credit_hold.is_(True))))
    over = {brand_id for brand_id in limited | held if credit_status(session, brand_id, now=now)["over_limit"]}
    for brand_id, hold in [(b, True) for b in over - held] + [(b, False) for b in held - over]:
        session.execute(update(Brand).where(Brand.id == brand_id).values(credit_hold=hold))
    approved = _release_conversions(session, over, now)
    return {"held": len(over - held), "released": len(held - over), "approved": approved}


def _release_conversions(session: Session, over: set[int], now: dt.datetime) -> int:
    """Let go of the conversions held for their brand's credit, the brand now under its limit; return how many.

    Every run, not only when a brand's hold is lifted: a process may record a conversion on the hold
    it cached after the run that lifted it. A conversion another flag holds for its offer stays for
    review; one inside its offer's hold period waits for it (`hold_until`); the rest are approved.
    """
    from sqlalchemy import select

    waiting = session.execute(
        select(Conversion, Offer.hold_days, Offer.hold_flags)
        .join(Offer, Offer.id == Conversion.offer_id)
        .where(
            Conversion.status == ConversionStatus.PENDING.value,
            Conversion.hold_until.is_(None),
            Conversion.brand_id.not_in(over) if over else true(),
        )
    ).all()
    approved = 0
    for conversion, hold_days, hold_flags in waiting:
        flags = list(conversion.flags or ())
        if "over_credit" not in flags or conversion_rules.holds(
            [f for f in flags if f != "over_credit"], offer_rules.hold_flags(hold_flags)
        ):
            continue
        hold_until = conversion.created_at + dt.timedelta(days=hold_days)
        if hold_until > now:
            conversion.hold_until = hold_until  # mature_holds approves it then
            continue
        approved += bool(
            conversions.transition(session, conversion, "approved", "credit restored", actor="billing", at=now)
        )
    return approved
