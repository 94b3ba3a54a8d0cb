"""Partner postbacks: the outbox written with each conversion change, per-offer URLs, the delivery log."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from network import money, netguard
from network.auth import Principal, Role, require
from network.clock import now_utc
from network.conversions import service as conversions
from network.conversions.models import Conversion
from network.conversions.signals import Change, connect_both
from network.db import DEFAULT_PAGE, Raw, insert_for, paged
from network.deadletters import isolate
from network.deliveries import rules, sender
from network.deliveries.models import (
    GLOBAL,
    RETRYABLE,
    DeliveryStatus,
    OfferPostback,
    PostbackAttempt,
    PostbackDelivery,
    PostbackDisable,
)
from network.errors import Conflict, Forbidden, NotFound, ValidationError
from network.offers import service as offers
from network.partners import service as partners
from network.partners.models import Partner
from network.tracking import service as tracking
from network.tracking.models import Link

log = logging.getLogger(__name__)

# ---- targets and disabled URLs -----------------------------------------------------------------


def url_hash(template: str) -> str:
    """Return the key a URL template is disabled under."""
    return hashlib.sha256(template.encode("utf-8", "surrogateescape")).hexdigest()


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


def target_of(offer_postback: OfferPostback | None) -> str:
    """Return the target name of the partner's global URL (None) or of a per-offer URL."""
    return GLOBAL if offer_postback is None else f"offer:{offer_postback.id}"


def resolve_target(session: Session, partner: Partner, target: str) -> tuple[str, str] | None:
    """Return (template, method) a target calls now, or None when it has no URL any more."""
    if target == GLOBAL:
        return (partner.postback_url, partner.postback_method or "get") if partner.postback_url else None
    kind, _, ident = target.partition(":")
    if kind != "offer" or not ident.isdigit():
        return None
    row = session.get(OfferPostback, int(ident))
    if row is None or row.partner_id != partner.id:
        return None
    return row.url, row.method


def find_disable(session: Session, partner_id: int, target: str, template: str) -> PostbackDisable | None:
    """Return the record that disabled this URL of this target, if it is disabled."""
    return session.scalars(
        select(PostbackDisable).where(
            PostbackDisable.partner_id == partner_id,
            PostbackDisable.target == target,
            PostbackDisable.url_hash == url_hash(template),
        )
    ).one_or_none()


def disable_url(
    session: Session, *, partner_id: int, target: str, template: str, reason: str, delivery_id: int | None
) -> PostbackDisable:
    """Stop calling a URL (it answered 410 Gone), recording why; idempotent, also when two 410s race."""
    # ON CONFLICT DO NOTHING, not check-then-insert: a concurrent job disabling the same URL must
    # not turn this one's unique violation into a rollback of its attempt record.
    redacted = netguard.redact_url(template)
    insert = (
        insert_for(session.get_bind().dialect.name)(PostbackDisable)
        .values(
            partner_id=partner_id,
            target=target,
            url_hash=url_hash(template),
            url=redacted,
            reason=reason,
            delivery_id=delivery_id,
            disabled_at=now_utc(),
        )
        .on_conflict_do_nothing(index_elements=["partner_id", "target", "url_hash"])
        .returning(PostbackDisable.id)
    )
    for _attempt in range(3):
        existing = find_disable(session, partner_id, target, template)
        if existing is not None:
            return existing
        # Nothing inserted: a concurrent job's row (committed: the INSERT waited for it) is found
        # by the next look; in the unlikely case it was enabled again meanwhile, insert again.
        if session.execute(insert).scalar() is not None:
            log.warning("postback URL disabled: partner=%s target=%s url=%s (%s)", partner_id, target, redacted, reason)
    raise RuntimeError("a disabled postback URL kept being enabled again while it was being disabled")


# ---- the outbox ----------------------------------------------------------------------------------


def click_subs(session: Session, click_id: str, link_id: int | None) -> tuple[dict[str, str], bool]:
    """Return the sub ids of a conversion's click and whether they came from the click row.

    Click rows are written in batches off the request path, so a very fresh click may have no
    row yet: then the link's sub ids stand in and the job completes them at send time.
    """
    click = tracking.get_click(session, click_id)
    link_key = click.link_id if click is not None else link_id
    link = session.get(Link, link_key) if link_key is not None else None
    subs = {}
    for name in rules.SUB_NAMES:
        value = getattr(click, name, None) if click is not None else None
        if value is None and link is not None:
            value = getattr(link, name)
        subs[name] = value or ""
    return subs, click is not None


def macro_values(session: Session, conversion: Conversion, new_status: str) -> tuple[dict[str, str], bool]:
    """Return the macro values announcing a conversion's change, and whether the subs are final."""
    subs, from_click = click_subs(session, conversion.click_id, conversion.link_id)
    values = {
        "click_id": conversion.click_id,
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

    For a conversion whose batch the database refused (network/conversions/batch.py): a refused
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


# ---- per-offer URLs ------------------------------------------------------------------------------


def _partner_for_change(session: Session, principal: Principal, partner_id: int) -> Partner:
    partner = partners.get_partner(session, principal, partner_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    return partner


def check_url(
    url: str,
    *,
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
) -> str:
    """Return a per-offer postback URL template if it may be called, else raise naming the problem."""
    try:
        return netguard.validate_postback_template(
            url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver
        )
    except netguard.UnsafeURL as exc:
        raise ValidationError(f"url: {exc}", field="url", code="unsafe_url") from exc


def list_offer_postbacks(
    session: Session, principal: Principal, partner_id: int, *, limit: int = DEFAULT_PAGE, after: int | None = None
) -> list[OfferPostback]:
    """Return a page of a partner's per-offer postback URLs, by id."""
    partners.get_partner(session, principal, partner_id)
    query = select(OfferPostback).where(OfferPostback.partner_id == partner_id)
    return list(session.scalars(paged(query, OfferPostback.id, limit=limit, after=after)))


def get_offer_postback(session: Session, principal: Principal, partner_id: int, postback_id: int) -> OfferPostback:
    """Return one per-offer postback URL of a partner, or 404."""
    partners.get_partner(session, principal, partner_id)
    row = session.get(OfferPostback, postback_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound("offer postback not found")
    return row


def create_offer_postback(
    session: Session,
    principal: Principal,
    partner_id: int,
    *,
    offer_id: int,
    url: str,
    method: str = "get",
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
) -> OfferPostback:
    """Set a partner's postback URL for one offer it may run (the partner itself, admin)."""
    partner = _partner_for_change(session, principal, partner_id)
    offer = offers.get_offer(session, principal, offer_id)
    if not offers.partner_may_run(session, offer, partner.id):
        raise ValidationError("offer_id: the partner may not run this offer", field="offer_id")
    template = check_url(url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver)
    existing = session.scalars(
        select(OfferPostback).where(OfferPostback.partner_id == partner.id, OfferPostback.offer_id == offer.id)
    ).one_or_none()
    if existing is not None:
        raise Conflict(f"the partner already has postback URL {existing.id} for this offer; change that one")
    row = OfferPostback(partner_id=partner.id, offer_id=offer.id, url=template, method=method)
    session.add(row)
    session.flush()
    return row


def update_offer_postback(
    session: Session,
    principal: Principal,
    partner_id: int,
    postback_id: int,
    *,
    allow_http: bool,
    allowed_networks: Sequence[Any],
    resolver: netguard.Resolver = netguard.default_resolver,
    url: str | None = None,
    method: str | None = None,
) -> OfferPostback:
    """Change a per-offer postback URL or its method; a new URL is validated again."""
    row = get_offer_postback(session, principal, partner_id, postback_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    if url is not None:
        row.url = check_url(url, allow_http=allow_http, allowed_networks=allowed_networks, resolver=resolver)
    if method is not None:
        row.method = method
    session.flush()
    return row


def delete_offer_postback(session: Session, principal: Principal, partner_id: int, postback_id: int) -> None:
    """Remove a per-offer postback URL; its pending deliveries fail (no URL) when their turn comes."""
    row = get_offer_postback(session, principal, partner_id, postback_id)
    require(principal, Role.ADMIN, Role.PARTNER)
    session.delete(row)
    session.flush()


# ---- disabled URLs -------------------------------------------------------------------------------


def list_disables(
    session: Session, principal: Principal, partner_id: int, *, limit: int = DEFAULT_PAGE, after: int | None = None
) -> list[PostbackDisable]:
    """Return a page of the partner's postback URLs the network stopped calling, and why, by id."""
    partners.get_partner(session, principal, partner_id)
    query = select(PostbackDisable).where(PostbackDisable.partner_id == partner_id)
    return list(session.scalars(paged(query, PostbackDisable.id, limit=limit, after=after)))


def enable(session: Session, principal: Principal, partner_id: int, disable_id: int) -> None:
    """Call a disabled URL again (the partner fixed its endpoint)."""
    _partner_for_change(session, principal, partner_id)
    row = session.get(PostbackDisable, disable_id)
    if row is None or row.partner_id != partner_id:
        raise NotFound("disabled postback URL not found")
    session.delete(row)
    session.flush()


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
    if partner_id is not None:
        query = query.where(PostbackDelivery.partner_id == partner_id)
    if status is not None:
        query = query.where(PostbackDelivery.status == status)
    if conversion_id is not None:
        query = query.where(PostbackDelivery.conversion_id == conversion_id)
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
            claimed_until=None,
            claim_token=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"only failed or dead deliveries can be retried; this one is {delivery.status}")
    session.refresh(delivery)
    return delivery


# ---- test deliveries -----------------------------------------------------------------------------


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
    partner = _partner_for_change(session, principal, partner_id)
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
        response_excerpt=rules.excerpt(response.body),
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
