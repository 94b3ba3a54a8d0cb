"""Test deliveries: a partner calls its postback URL now with test values, and a 2xx enables it again."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from network import netguard
from network.auth import Principal
from network.clock import now_utc
from network.deliveries import rules, sender
from network.deliveries.models import GLOBAL, OfferPostback
from network.deliveries.targets import find_disable, partner_for_change, resolve_target, target_of
from network.errors import NotFound, ValidationError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostbackTestPlan:
    """What a test delivery will send, read before the request's transaction ends."""

    partner_id: int
    target: str
    template: str
    request: sender.Request


@dataclass(frozen=True)
class PostbackTestResult:
    """The outcome of a test delivery, as the partner's endpoint answered it."""

    ok: bool
    method: str
    url: str
    status_code: int | None
    latency_ms: int
    error: str | None
    address: str | None
    response_excerpt: str | None
    #: The URL had been disabled (410) and the successful test enabled it again.
    enabled_again: bool = False


TEST_MACROS = {
    "click_id": "test",
    "conversion_id": "0",
    "offer_id": "0",
    "event": "test",
    "payout": "0.00",
    "currency": "USD",
    "status": "test",
    **{name: "" for name in rules.SUB_NAMES},
}


def plan_test(
    session: Session, principal: Principal, partner_id: int, *, offer_id: int | None = None
) -> PostbackTestPlan:
    """Return the test delivery to send to a partner's global URL, or to its URL for one offer."""
    partner = partner_for_change(session, principal, partner_id)
    if offer_id is None:
        target = GLOBAL
    else:
        row = session.scalars(
            select(OfferPostback).where(OfferPostback.partner_id == partner.id, OfferPostback.offer_id == offer_id)
        ).one_or_none()
        if row is None:
            raise NotFound("the partner has no postback URL for this offer")
        target = target_of(row)
    found = resolve_target(session, partner, target)
    if found is None:
        raise ValidationError("postback_url: the partner has no postback URL to test", field="postback_url")
    template, method = found
    macros = dict(TEST_MACROS, offer_id=str(offer_id or 0))
    try:
        request = sender.build(
            template=template,
            method=method,
            macros=macros,
            webhook_id="msg_test_" + uuid.uuid4().hex,
            secret=partner.postback_secret,
            old_status=None,
            event_at=now_utc(),
        )
    except netguard.UnsafeURL as exc:
        raise ValidationError(f"postback_url: {exc}", field="postback_url", code="unsafe_url") from exc
    return PostbackTestPlan(partner_id=partner.id, target=target, template=template, request=request)


def fire_test(plan: PostbackTestPlan, transport: sender.Transport) -> PostbackTestResult:
    """Send a test delivery now (a deliberate user action) and return how the endpoint answered."""
    response = sender.send(plan.request, transport)
    outcome = rules.decide(
        status_code=response.status,
        error=response.error,
        headers=response.headers,
        attempts=1,
        max_attempts=1,
        now=now_utc(),
    )
    log.info(
        "postback test: partner=%s %s %s -> status=%s error=%s %dms",
        plan.partner_id,
        plan.request.method,
        plan.request.redacted_url,
        response.status,
        outcome.error,
        response.latency_ms,
    )
    return PostbackTestResult(
        ok=response.ok,
        method=plan.request.method,
        url=plan.request.redacted_url,
        status_code=response.status,
        latency_ms=round(response.latency_ms),
        error=outcome.error,
        address=response.address,
        response_excerpt=sender.excerpt(response.body),
    )


def after_test(session: Session, plan: PostbackTestPlan, result: PostbackTestResult) -> PostbackTestResult:
    """Enable the tested URL again when it had been disabled and now answered 2xx."""
    if not result.ok:
        return result
    row = find_disable(session, plan.partner_id, plan.target, plan.template)
    if row is None:
        return result
    session.delete(row)
    session.flush()
    return replace(result, enabled_again=True)
