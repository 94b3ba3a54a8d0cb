"""Partner postbacks: the outbox written with each conversion change, and the delivery log.

Where postbacks go (per-offer URLs, disabled URLs) lives in `targets`, test deliveries in `probe`;
their names are imported here too, so callers of this service find them where they always did.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from network import money
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.conversions import service as conversions
from network.conversions.models import Conversion
from network.conversions.signals import Change, connect_both
from network.db import DEFAULT_PAGE, Raw, paged, where_given
from network.deadletters import isolate
from network.deliveries import rules
from network.deliveries.models import (
    GLOBAL,
    RETRYABLE,
    DeliveryStatus,
    OfferPostback,
    PostbackAttempt,
    PostbackDelivery,
)
from network.deliveries.probe import (
    TEST_MACROS,
    PostbackTestPlan,
    PostbackTestResult,
    after_test,
    fire_test,
    plan_test,
)
from network.deliveries.targets import (
    check_url,
    create_offer_postback,
    delete_offer_postback,
    disable_url,
    enable,
    find_disable,
    get_offer_postback,
    list_disables,
    list_offer_postbacks,
    resolve_target,
    target_of,
    update_offer_postback,
    url_hash,
)
from network.errors import Conflict, Forbidden, NotFound
from network.partners.models import Partner
from network.tracking import service as tracking
from network.tracking.models import Link

__all__ = [
    "TEST_MACROS",
    "PostbackTestPlan",
    "PostbackTestResult",
    "after_test",
    "check_url",
    "click_subs",
    "create_offer_postback",
    "delete_offer_postback",
    "disable_url",
    "enable",
    "enqueue",
    "find_disable",
    "fire_test",
    "get_delivery",
    "get_offer_postback",
    "list_attempts",
    "list_deliveries",
    "list_disables",
    "list_offer_postbacks",
    "macro_values",
    "plan_test",
    "resolve_target",
    "retry_delivery",
    "target_of",
    "update_offer_postback",
    "url_hash",
]

log = logging.getLogger(__name__)

#: A partner's global URL and its URL for one offer (on the driver: read for every conversion change).
_TARGETS = Raw(
    lambda _dialect: (
        select(Partner.postback_url, OfferPostback.id, OfferPostback.url)
        .outerjoin(
            OfferPostback,
            (OfferPostback.partner_id == Partner.id) & (OfferPostback.offer_id == bindparam("offer_id")),
        )
        .where(Partner.id == bindparam("partner_id"))
    )
)


class _Targets(NamedTuple):
    postback_url: str | None
    per_offer_id: int | None
    per_offer_url: str | None


# ---- the outbox ----------------------------------------------------------------------------------


def click_subs(session: Session, click_id: str | None, link_id: int | None) -> tuple[dict[str, str], bool]:
    """Return the sub ids of a conversion's click and whether they are final (from the click row, or no click).

    Click rows are written in batches off the request path, so a very fresh click may have no
    row yet: then the link's sub ids stand in and the job completes them at send time. A
    conversion without a click (a customer's, a coupon's) has its link's for good.
    """
    click = tracking.get_click(session, click_id) if click_id else None
    link_key = click.link_id if click is not None else link_id
    link = session.get(Link, link_key) if link_key is not None else None
    subs = {}
    for name in rules.SUB_NAMES:
        value = getattr(click, name, None) if click is not None else None
        if value is None and link is not None:
            value = getattr(link, name)
        subs[name] = value or ""
    return subs, click is not None or not click_id


def macro_values(session: Session, conversion: Conversion, new_status: str) -> tuple[dict[str, str], bool]:
    """Return the macro values announcing a conversion's change, and whether the subs are final."""
    # The partner's own click: a coupon that won over another partner's click keeps that click on
    # the conversion, and its sub ids are that partner's.
    own_click = conversion.click_id if conversion.attributed_by == "click" else None
    subs, from_click = click_subs(session, own_click, conversion.link_id)
    values = {
        "click_id": own_click or "",
        "conversion_id": str(conversion.id),
        "offer_id": str(conversion.offer_id),
        "event": conversions.event_keys(session, [conversion.event_id]).get(conversion.event_id, ""),
        "payout": money.format_amount(conversion.payout_minor, conversion.currency),
        "currency": conversion.currency,
        "status": new_status,
        **subs,
    }
    if conversion.txn_id is not None and conversions.brands_sharing_txn_id(session, [conversion.brand_id]):
        values["txn_id"] = conversion.txn_id
    return values, from_click


#: `enqueue` reads the partner's URLs itself.
_UNREAD: Any = object()


def _targets_row(session: Session, partner_id: int, offer_id: int) -> Any:
    """Return the partner's global URL and its URL for the offer (one row; None without the partner)."""
    # On the driver (SQLAlchemy's execution path costs more than the query); flushed first, so a
    # partner changed in this session is read as changed.
    session.flush()
    rows = _TARGETS.all(session, {"partner_id": partner_id, "offer_id": offer_id})
    return _Targets(*rows[0]) if rows else None


def enqueue(
    session: Session,
    *,
    conversion: Conversion,
    old_status: str | None,
    new_status: str,
    at: dt.datetime,
    targets_row: Any = _UNREAD,
) -> list[PostbackDelivery]:
    """Write one outbox row per partner URL for a conversion change, in the caller's transaction.

    `targets_row`: the partner's URLs for the offer (`_targets_row`), when the caller read them.
    """
    # One query says whether there is anything to do: most partners have no URL (conversions of
    # theirs then cost the outbox nothing more).
    found = _targets_row(session, conversion.partner_id, conversion.offer_id) if targets_row is _UNREAD else targets_row
    if found is None:
        return []
    targets: list[tuple[str, str]] = []
    if found.postback_url:
        targets.append((GLOBAL, found.postback_url))
    if found.per_offer_id is not None:
        targets.append((f"offer:{found.per_offer_id}", found.per_offer_url))
    if not targets:
        return []
    # A URL disabled by a 410 stays silent until the partner changes or enables it again.
    targets = [(t, url) for t, url in targets if find_disable(session, conversion.partner_id, t, url) is None]
    if not targets:
        return []
    if conversion.id is None:
        session.flush()
    keys = {t: f"{conversion.id}:{old_status or 'new'}>{new_status}:{t}" for t, _ in targets}
    # A repeated signal for the same change must not make a second delivery.
    seen = set(
        session.scalars(select(PostbackDelivery.dedupe_key).where(PostbackDelivery.dedupe_key.in_(keys.values())))
    )
    macros, from_click = macro_values(session, conversion, new_status)
    made = []
    for target, _url in targets:
        if keys[target] in seen:
            continue
        delivery = PostbackDelivery(
            dedupe_key=keys[target],
            webhook_id="msg_" + uuid.uuid4().hex,
            partner_id=conversion.partner_id,
            offer_id=conversion.offer_id,
            conversion_id=conversion.id,
            target=target,
            old_status=old_status,
            new_status=new_status,
            event_at=at,
            macros=dict(macros),
            subs_from_click=from_click,
            status=DeliveryStatus.PENDING.value,
            attempts=0,
            max_attempts=rules.MAX_ATTEMPTS,
            next_attempt_at=at,
        )
        made.append(delivery)
    if session.info.get(isolate.ONE_BY_ONE):
        return _add_one_by_one(session, made)
    session.add_all(made)
    session.flush()
    return made


def _add_one_by_one(session: Session, made: list[PostbackDelivery]) -> list[PostbackDelivery]:
    """Add outbox rows each in a SAVEPOINT; keep one the database refuses as a dead letter instead.

    For a conversion whose batch the database refused (network/conversions/groupcommit.py): a refused
    partner postback must not cost the conversion.
    """
    kept = []
    for delivery in made:
        try:
            with session.begin_nested():
                session.add(delivery)
                session.flush()
        except Exception as error:
            if not isolate.refused(error):
                raise
            row = {column.key: getattr(delivery, column.key) for column in PostbackDelivery.__table__.columns}
            isolate.keep_in(session, "outbox", isolate.describe(error), row)
            continue
        kept.append(delivery)
    return kept


def _on_status_changed(
    _sender: Any,
    *,
    session: Session,
    conversion: Conversion,
    old_status: str | None,
    new_status: str,
    at: dt.datetime,
    **_: Any,
) -> None:
    """Receive conversions' status_changed: queue the partner's postbacks in the same transaction."""
    enqueue(session, conversion=conversion, old_status=old_status, new_status=new_status, at=at)


def _on_many(_sender: Any, *, session: Session, changes: list[Change], **_: Any) -> None:
    """Receive many changes at once: one look at each partner's URLs per offer, not one per change."""
    found: dict[tuple[int, int], Any] = {}
    for change in changes:
        pair = (change.conversion.partner_id, change.conversion.offer_id)
        if pair not in found:
            found[pair] = _targets_row(session, *pair)
        enqueue(
            session, conversion=change.conversion, old_status=change.old_status, new_status=change.new_status,
            at=change.at, targets_row=found[pair],
        )  # fmt: skip


connect_both(_on_status_changed, _on_many)

# ---- the delivery log ----------------------------------------------------------------------------


def _readable(principal: Principal) -> None:
    if principal.role is Role.BRAND:
        # Deliveries carry partners' payout figures, which brands never see (SPEC §1).
        raise Forbidden("brands may not read partner postbacks")


def list_deliveries(
    session: Session,
    principal: Principal,
    *,
    status: str | None = None,
    partner_id: int | None = None,
    conversion_id: int | None = None,
    limit: int = DEFAULT_PAGE,
    after: int | None = None,
) -> list[PostbackDelivery]:
    """Return one page of deliveries: a partner its own, admin and finance all."""
    _readable(principal)
    query = select(PostbackDelivery)
    if principal.role is Role.PARTNER:
        query = query.where(PostbackDelivery.partner_id == principal.partner_id)
    query = where_given(
        query,
        (PostbackDelivery.partner_id, partner_id),
        (PostbackDelivery.status, status),
        (PostbackDelivery.conversion_id, conversion_id),
    )
    return list(session.scalars(paged(query, PostbackDelivery.id, limit=limit, after=after)))


def get_delivery(session: Session, principal: Principal, delivery_id: int) -> PostbackDelivery:
    """Return a delivery the principal may see, or 404."""
    _readable(principal)
    row = session.get(PostbackDelivery, delivery_id)
    if row is None or (principal.role is Role.PARTNER and row.partner_id != principal.partner_id):
        raise NotFound("postback delivery not found")
    return row


def list_attempts(session: Session, delivery: PostbackDelivery) -> list[PostbackAttempt]:
    """Return a delivery's attempts, oldest first."""
    return list(
        session.scalars(
            select(PostbackAttempt).where(PostbackAttempt.delivery_id == delivery.id).order_by(PostbackAttempt.id)
        )
    )


def retry_delivery(session: Session, principal: Principal, delivery_id: int) -> PostbackDelivery:
    """Queue a dead-lettered or failed delivery for one more attempt by the delivery job (409 otherwise)."""
    delivery = get_delivery(session, principal, delivery_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    now = now_utc()
    # Conditional, so two retries (or a retry racing the job) grant one attempt, not two.
    result = session.execute(
        update(PostbackDelivery)
        .where(PostbackDelivery.id == delivery.id, PostbackDelivery.status.in_(RETRYABLE))
        .values(
            status=DeliveryStatus.PENDING.value,
            max_attempts=PostbackDelivery.attempts + 1,
            next_attempt_at=now,
            leased_until=None,
            lease_token=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"only failed or dead deliveries can be retried; this one is {delivery.status}")
    session.refresh(delivery)
    return delivery
