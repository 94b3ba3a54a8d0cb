"""Conversions: a brand's postback or a pixel from its parameters to the plan that records it.

`receive` reads the request's parameters and authenticates it (intake.py), attributes its click
(attribution.py) and answers at once what records no new conversion: an undo by txn_id
(statuses.py) or an unknown click. Everything else becomes a `Plan`, which the request hands to the
group commit (groupcommit.py) or records alone with `record_alone`; both record by the one path,
recording.record. A pixel is not authenticated: it must name its offer, the visitor's click must be
on it, and what it reports is held for the brand's review.

This module is also the domain's service for the other domains and the web layer: the names
below are re-exported from the modules that hold them.

API: `receive`, `record_alone`, `Recorder`; re-exported: `Received`, `Trace`, `Answer`, `Plan`,
`start_trace`, `write_trace`, `log_row`, `LOG_LINES`, `PARAMS`, `SECRET_PARAMS`, `sign`, `holder`,
`transition`, `change_status`, `get_conversion`, `list_conversions`, `history`, `event_keys`,
`brands_sharing_txn_id`, `list_postback_log`, `SUB_IDS`.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from sqlalchemy.orm import Session

from network.config import Settings
from network.conversions import attribution, beyond, firstclick, intake, recording, statuses
from network.conversions.attribution import Attribution, Plan
from network.conversions.context import ContextCache
from network.conversions.intake import (
    LOG_LINES,
    PARAMS,
    SECRET_PARAMS,
    Answer,
    Params,
    Received,
    Trace,
    log_row,
    sign,
    start_trace,
    write_trace,
)
from network.conversions.reads import (
    SUB_IDS,
    brands_sharing_txn_id,
    event_keys,
    get_conversion,
    history,
    list_conversions,
    list_postback_log,
    sub_ids,
)
from network.conversions.recording import holder
from network.conversions.statuses import change_status, transition
from network.errors import DomainError, ValidationError

__all__ = [
    "LOG_LINES", "PARAMS", "SECRET_PARAMS", "SUB_IDS", "Answer", "Plan", "Received", "Recorder", "Trace",
    "brands_sharing_txn_id", "change_status", "event_keys", "get_conversion", "history", "holder",
    "list_conversions", "list_postback_log", "log_row", "receive", "record_alone", "sign", "start_trace",
    "sub_ids", "transition", "write_trace",
]  # fmt: skip


class Recorder(Protocol):
    """Records plans in shared transactions (groupcommit.GroupCommit)."""

    def submit(self, plan: Plan) -> Answer | DomainError | None:
        """Return the plan's answer or refusal once committed; None when it must be recorded alone."""


def receive(
    session: Session,
    *,
    settings: Settings,
    received: Received,
    trace: Trace,
    now: dt.datetime,
    contexts: ContextCache | None = None,
) -> Answer | Plan:
    """Judge one brand postback or pixel up to its recording; raise ValidationError/Forbidden.

    Return the 200 answer of what records no new conversion (an undo, an unknown click: its log line
    is written here), else the plan that records it. `trace` is filled in as the request is
    understood, so the caller can log it whatever happens. `contexts` keeps links' contexts for a
    moment (None: read each time).
    """
    data = intake.read_params(received)
    pixel = received.source == "pixel"
    if pixel:
        # Unchecked (a cookie may hold anything): it only has to verify; the log keeps a safe copy.
        data.click_id = received.cookie_click_id
    else:
        trace.click_id = data.click_id
    trace.txn_id = data.txn_id
    trace.offer_id = data.offer_id
    if data.status is not None:
        answer = statuses.undo(session, settings=settings, contexts=contexts, received=received, data=data,
                               trace=trace, now=now)  # fmt: skip
        write_trace(session, trace, at=now)
        return answer
    if data.click_id is None and not pixel and (data.coupon is not None or data.customer_id is not None):
        return beyond.without_click(session, contexts=contexts, received=received, data=data, trace=trace, now=now)
    _require_click(data, pixel=pixel)
    found = attribution.attribute(session, settings, contexts, data.click_id, data.event)
    trace.brand_id = _brand(session, received, data, found, now, pixel=pixel)
    if found is None or not _on_the_named_offer(found, trace.brand_id, data):
        # A forged id, another network's id, or a click on another brand's (or another) offer.
        trace.status, trace.reason = "rejected", "unknown_click"
        write_trace(session, trace, at=now)
        return Answer(None, "rejected", "unknown_click")
    if found.link.attribution == "first_click" and data.click_id is not None:
        # The visitor's earliest click on the offer takes it (the log keeps the click id received).
        found, data.click_id = firstclick.earliest(session, contexts, found, data.click_id, data.event, now)
    attributed_by, coupon = "click", None
    if data.coupon is not None:
        # After the attribution rule has picked the click: the offer's coupon rule weighs that click.
        found, attributed_by, coupon = beyond.with_coupon(
            session, contexts=contexts, found=found, data=data, brand_id=found.link.brand_id
        )
    plan = attribution.plan(found, data=data, trace=trace, now=now, pixel=pixel)
    plan.attributed_by, plan.coupon = attributed_by, coupon
    return plan


def _require_click(data: Params, *, pixel: bool) -> None:
    if data.click_id is None:
        where = "the click cookie" if pixel else "click_id"
        raise ValidationError(f"click_id is required (from {where})", field="click_id")
    if pixel and data.offer_id is None:
        # The pixel is not authenticated: it must at least name the offer its page converts for.
        raise ValidationError("offer_id is required: the pixel names the offer it converts for", field="offer_id")


def _brand(
    session: Session, received: Received, data: Params, found: Attribution | None, now: dt.datetime, *, pixel: bool
) -> int | None:
    """Return the brand the request counts for: the authenticated one (Forbidden otherwise), or a pixel's offer's."""
    link = found.link if found is not None else None
    if not pixel:
        return intake.authenticated_brand(session, received, data, link, now)
    # A browser has no token: the pixel counts only for the offer it names, when the visitor's
    # click is on that offer; it is then held for review (SPEC §5 fraud signals: "pixel").
    return link.brand_id if link is not None and link.offer_id == data.offer_id else None


def _on_the_named_offer(found: Attribution, brand_id: int | None, data: Params) -> bool:
    """Return whether the click is the brand's, on the offer the request names (if it names one)."""
    link = found.link
    return link.brand_id == brand_id and (data.offer_id is None or link.offer_id == data.offer_id)


def record_alone(session: Session, plan: Plan) -> Answer:
    """Record one plan in the session's transaction (a batch of one); raise Conflict for a txn_id's other amount."""
    ((outcome, fields),) = recording.record(session, [plan])
    for name, value in fields.items():
        setattr(plan.trace, name, value)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome
