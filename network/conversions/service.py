"""Conversions: brand postbacks and pixels through the validation pipeline, statuses, and reading.

A postback is judged in this order: malformed input (400), then authentication (403), then the
pipeline of SPEC §5 (200 whatever the verdict, 409 for a known txn_id with another amount). The
brand is the one the request names (offer_id, else the token, else a signature's click) and only
an authenticated brand's log shows the request. The dedupe key is claimed first with INSERT ... ON
CONFLICT DO NOTHING, so a replay, even one racing the original, answers the first conversion; only
the winner then consumes the offer's caps. A pixel is not authenticated: it must name its offer,
the visitor's click must be on it, and what it reports is held for the brand's review.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import Integer, Select, String, Table, bindparam, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from network import money
from network import text as text_rule
from network.accounts.models import Brand
from network.auth import Principal, Role, require
from network.clock import as_utc
from network.config import Settings
from network.conversions import rules
from network.conversions.context import CapRule, ContextCache, LinkContext, read_context
from network.conversions.models import Conversion, ConversionHistory, PostbackLog
from network.conversions.signals import status_changed
from network.db import InsertMany, Raw, paged, where_given
from network.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from network.offers import caps as cap_counters
from network.offers.models import Cap, Offer, OfferEvent
from network.offers.rules import Figures, needs_amount
from network.tracking.clickid import ClickIdCodec, ClickRef
from network.tracking.models import Click, Link
from network.tracking.writer import buffered_click

#: Parameters a postback reads; any other is ignored (and kept in the log).
PARAMS = (
    "click_id",
    "transaction_id",
    "event",
    "amount",
    "currency",
    "txn_id",
    "status",
    "token",
    "offer_id",
    "reason",
)
#: Never stored in the postback log.
SECRET_PARAMS = frozenset({"token"})
#: The sub ids a conversion list may be filtered by.
SUB_IDS = ("sub1", "sub2", "sub3", "sub4", "sub5")
#: How far a signature's timestamp may be from now, either side.
SIGNATURE_WINDOW = dt.timedelta(minutes=5)
_MAX_LEN = {"click_id": 64, "event": 64, "txn_id": 255, "currency": 3, "status": 16, "offer_id": 18, "reason": 255}
_MAX_AMOUNT_LEN = 32
#: Ids are INTEGER columns (PostgreSQL's is 32-bit): larger ones are refused as input, not sent.
MAX_ID = 2**31 - 1
#: Control characters and lone surrogates (network.text's rule): never part of an id, a key or an
#: amount, and NUL cannot be stored in a PostgreSQL text column.
_UNPRINTABLE = text_rule.UNSTORABLE
#: Unix seconds have 10 digits until the year 2286; a longer t= is not a time.
_MAX_TIMESTAMP_DIGITS = 12
#: What the log keeps of each parameter (the whole request is never needed to trace a discrepancy).
_LOG_VALUE_LEN = 512
_LOG_PARAMS = 50


@functools.lru_cache(maxsize=8)
def _codec(secret: str) -> ClickIdCodec:
    return ClickIdCodec(secret)


# ---- what arrived, and the log line it leaves ---------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A postback or pixel request as the web layer read it: every value of every parameter."""

    source: str
    method: str
    params: Mapping[str, Sequence[str]]
    #: What an X-Signature covers: the raw query string (GET) or body (POST).
    raw: bytes = b""
    signature: str | None = None
    #: A POST that also carried a query string (the signature does not cover it).
    query_on_post: bool = False
    remote_addr: str | None = None
    #: The click id of the visitor's cookie (pixel only).
    cookie_click_id: str | None = None


@dataclass
class Trace:
    """What the postback log records about one request; filled in as the request is judged."""

    source: str
    method: str
    params: dict[str, Any]
    remote_addr: str | None
    brand_id: int | None = None
    offer_id: int | None = None
    click_id: str | None = None
    txn_id: str | None = None
    http_status: int = 200
    conversion_id: int | None = None
    status: str | None = None
    reason: str | None = None
    duplicate: bool = False


def _loggable(text: str, limit: int) -> str:
    """Return `text` cut to `limit` with what a database text column cannot hold replaced."""
    text = text[:limit]
    return _UNPRINTABLE.sub("\ufffd", text) if _UNPRINTABLE.search(text) else text


def start_trace(received: Received) -> Trace:
    """Return the log line of a request, with its secrets removed and long values cut."""
    kept: dict[str, Any] = {}
    for name, values in list(received.params.items())[:_LOG_PARAMS]:
        if name.lower() in SECRET_PARAMS:
            continue
        cut = [_loggable(v, _LOG_VALUE_LEN) for v in values]
        kept[_loggable(name, 64)] = cut[0] if len(cut) == 1 else cut
    return Trace(
        source=received.source,
        method=received.method,
        params=kept,
        remote_addr=_loggable(received.remote_addr or "", 45) or None,
        click_id=_loggable(received.cookie_click_id, _LOG_VALUE_LEN) if received.cookie_click_id else None,
    )


#: The postback log row's columns, as `log_row` makes them.
LOG_KEYS = (
    "received_at", "source", "method", "brand_id", "offer_id", "click_id", "txn_id", "params", "http_status",
    "conversion_id", "status", "reason", "duplicate", "remote_addr",
)  # fmt: skip
#: Postback log lines, one or a batch's (on the driver: they are written for every postback).
LOG_LINES = InsertMany(cast(Table, PostbackLog.__table__), LOG_KEYS)


def log_row(trace: Trace, *, at: dt.datetime) -> dict[str, Any]:
    """Return the postback log row of a request, as its trace says now."""
    return dict(
        received_at=at,
        source=trace.source,
        method=trace.method,
        brand_id=trace.brand_id,
        offer_id=trace.offer_id,
        click_id=trace.click_id,
        txn_id=trace.txn_id,
        params=trace.params,
        http_status=trace.http_status,
        conversion_id=trace.conversion_id,
        status=trace.status,
        # A refusal's reason may quote what the request sent (a parameter's name): stored as the params are.
        reason=_loggable(trace.reason, 255) if trace.reason else None,
        duplicate=trace.duplicate,
        remote_addr=trace.remote_addr,
    )


def write_trace(session: Session, trace: Trace, *, at: dt.datetime) -> None:
    """Add the request's postback log line to the session."""
    LOG_LINES.run(session, [log_row(trace, at=at)])


@dataclass(frozen=True)
class Answer:
    """The 200 answer of an authenticated postback."""

    conversion_id: int | None
    status: str | None
    reason: str | None
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Return the JSON body of SPEC §5."""
        return {
            "conversion_id": self.conversion_id,
            "status": self.status,
            "reason": self.reason,
            "duplicate": self.duplicate,
        }


# ---- reading the parameters ----------------------------------------------------------------------


@dataclass
class _Input:
    click_id: str | None = None
    event: str | None = None
    amount: str | None = None
    currency: str | None = None
    txn_id: str | None = None
    status: str | None = None
    token: str | None = None
    offer_id: int | None = None
    reason: str | None = None


def _read_params(received: Received) -> _Input:
    values: dict[str, str] = {}
    for name, given in received.params.items():
        if len(given) > 1:
            raise ValidationError(f"{name} was given {len(given)} times; send it once", field=name)
        if name in PARAMS:
            values[name] = given[0] if given else ""
    if "click_id" in values and "transaction_id" in values:
        raise ValidationError("click_id was given twice (transaction_id is its alias); send it once", field="click_id")
    if "transaction_id" in values:
        values["click_id"] = values.pop("transaction_id")
    for name, value in values.items():
        why = text_rule.problem(value)
        if why is not None:
            raise ValidationError(f"{name} {why}", field=name)
    for name, limit in _MAX_LEN.items():
        if len(values.get(name, "")) > limit:
            raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    if len(values.get("amount", "")) > _MAX_AMOUNT_LEN:
        raise ValidationError("amount must be a plain decimal number like 12.50", field="amount")
    # An empty value is the same as none (templated postbacks often leave a macro empty).
    data = _Input(
        click_id=values.get("click_id") or None,
        event=values.get("event") or None,
        amount=values.get("amount") or None,
        currency=values.get("currency") or None,
        txn_id=values.get("txn_id") or None,
        status=values.get("status") or None,
        token=values.get("token") or None,
        reason=values.get("reason") or None,
    )
    offer_id = values.get("offer_id")
    if offer_id:
        if not (offer_id.isascii() and offer_id.isdigit()) or not 1 <= int(offer_id) <= MAX_ID:
            raise ValidationError(f"offer_id must be a whole number from 1 to {MAX_ID}", field="offer_id")
        data.offer_id = int(offer_id)
    if data.status is not None and data.status not in ("reversed", "rejected"):
        raise ValidationError("status must be reversed or rejected", field="status")
    if data.status is not None and received.source == "pixel":
        raise ValidationError("a pixel cannot change a conversion's status", field="status")
    if data.currency is not None:
        try:
            money.check_currency(data.currency)
        except money.MoneyError as exc:
            raise ValidationError(f"currency: {exc}", field="currency") from exc
    if data.amount is not None:
        # Syntax and sign now; the decimals once the offer, and so its currency, is known (a
        # precision error names the currency that refuses it).
        _parse_amount(data.amount, data.currency) if data.currency else _check_amount(data.amount)
    return data


def _check_amount(text: str) -> None:
    try:
        money.check_amount_syntax(text)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc


def _parse_amount(text: str, currency: str) -> int:
    try:
        return money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc


# ---- authentication ------------------------------------------------------------------------------


def _signature_ok(header: str, token: str, raw: bytes, now: dt.datetime) -> bool:
    """Return whether `t=<unix>,v1=<hex>` is an HMAC-SHA256 of "t.raw" keyed by `token`, made within the window."""
    timestamp: str | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            candidates.append(value.strip().lower())
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or not candidates:
        return False
    if len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    at = int(timestamp)
    if abs(now.timestamp() - at) > SIGNATURE_WINDOW.total_seconds():
        return False
    expected = hmac.new(token.encode(), timestamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    # Every candidate is compared, so the time taken does not depend on which matched.
    matches = [hmac.compare_digest(expected.encode(), c.encode("ascii", "replace")) for c in candidates]
    return any(matches)


def sign(token: str, raw: bytes, at: int) -> str:
    """Return the X-Signature header value for `raw` at unix time `at` (for brands' code and tests)."""
    digest = hmac.new(token.encode(), str(at).encode() + b"." + raw, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def _authenticate(received: Received, data: _Input, brand_token: str | None, now: dt.datetime) -> None:
    """Raise Forbidden unless the request carries the brand's token or a valid signature by it."""
    if brand_token is None:
        raise Forbidden("postback not authenticated: unknown brand (send a valid token, or offer_id with a signature)")
    if data.token is not None:
        if not hmac.compare_digest(data.token.encode(), brand_token.encode()):
            raise Forbidden("postback not authenticated: wrong token")
        return
    if received.signature is None:
        raise Forbidden("postback not authenticated: send token or X-Signature")
    if received.query_on_post:
        raise Forbidden("postback not authenticated: a signed POST carries its parameters in the body only")
    if not _signature_ok(received.signature, brand_token, received.raw, now):
        raise Forbidden("postback not authenticated: bad or stale X-Signature")


def _brand_by_token(session: Session, token: str) -> tuple[int, str] | None:
    row = session.connection().execute(_BRAND_BY_TOKEN, {"token": token}).first()
    return (row.id, row.postback_token) if row else None


def _brand_of_offer(session: Session, offer_id: int) -> tuple[int, str] | None:
    row = session.connection().execute(_BRAND_OF_OFFER, {"offer_id": offer_id}).first()
    return (row.id, row.postback_token) if row else None


# ---- the click and the offer ---------------------------------------------------------------------

# Built once: the hot path executes them with parameters only (SQLAlchemy's compiled cache hits).
_BRAND_BY_TOKEN = select(Brand.id, Brand.postback_token).where(Brand.postback_token == bindparam("token"))
_BRAND_OF_OFFER = (
    select(Brand.id, Brand.postback_token)
    .join(Offer, Offer.brand_id == Brand.id)
    .where(Offer.id == bindparam("offer_id"))
)
_ANCHOR = select(bindparam("offer_id", type_=Integer).label("offer_id")).subquery("anchor")
#: The click's country and flags and the offer's conversion caps, in one round trip: one row per
#: cap (the click's columns repeated), or one row of NULL caps; the click's columns are NULL when
#: its row is not written yet.
_CLICK_AND_CAPS = (
    select(
        Click.country, Click.is_bot, Click.is_unique,
        Cap.id.label("cap_id"), Cap.metric, Cap.period, Cap.limit, Cap.scope,
    )
    .select_from(_ANCHOR)
    .outerjoin(Click, Click.id == bindparam("click_id"))
    .outerjoin(Cap, (Cap.offer_id == _ANCHOR.c.offer_id) & cap_counters.CONVERSION_CAP)
)  # fmt: skip
CONVERSION_TABLE = cast(Table, Conversion.__table__)
#: The conversion row's columns, as `judge` makes them.
CONVERSION_KEYS = (
    "offer_id", "event_id", "brand_id", "partner_id", "link_id", "click_id", "clicked_at", "txn_id", "status",
    "reason", "flags", "currency", "amount_minor", "payout_minor", "revenue_minor", "created_at", "hold_until",
    "status_changed_at",
)  # fmt: skip
#: Claims the dedupe keys of new conversions, one or a batch's: a row whose key was taken (before,
#: or by an earlier row of the same statement) is skipped and returns nothing.
CLAIM = InsertMany(
    CONVERSION_TABLE, CONVERSION_KEYS, conflict=True, returning=("id", "offer_id", "event_id", "txn_id", "click_id")
)
#: History lines, one or a batch's, as `history_row` makes them.
HISTORY_LINES = InsertMany(
    cast(Table, ConversionHistory.__table__), ("conversion_id", "at", "old_status", "new_status", "reason", "actor")
)
_REJECT = (
    update(CONVERSION_TABLE)
    .where(CONVERSION_TABLE.c.id == bindparam("b_id"))
    .values(status="rejected", reason=bindparam("reason"), flags=[], hold_until=None, payout_minor=0, revenue_minor=0)
)
_FIRST_COLUMNS = (
    CONVERSION_TABLE.c.id,
    CONVERSION_TABLE.c.status,
    CONVERSION_TABLE.c.reason,
    CONVERSION_TABLE.c.amount_minor,
    CONVERSION_TABLE.c.currency,
)


class _First(NamedTuple):
    """The conversion that holds a dedupe key, as a replay answers it."""

    id: int
    status: str
    reason: str | None
    amount_minor: int | None
    currency: str


#: The conversion that holds a dedupe key: by offer, event and txn_id, or by click and event.
#: Planned afresh each time: a plan PostgreSQL kept from when the table was nearly empty takes
#: ix_conversions_offer_created and reads all of the offer's conversions, not the key's unique index.
FIRST_BY_TXN = Raw(
    lambda _dialect: select(*_FIRST_COLUMNS).where(
        CONVERSION_TABLE.c.offer_id == bindparam("offer_id", type_=Integer),
        CONVERSION_TABLE.c.event_id == bindparam("event_id", type_=Integer),
        CONVERSION_TABLE.c.txn_id == bindparam("txn_id", type_=String),
    ),
    prepared=False,
)
FIRST_BY_CLICK = Raw(
    lambda _dialect: select(*_FIRST_COLUMNS).where(
        CONVERSION_TABLE.c.click_id == bindparam("click_id", type_=String),
        CONVERSION_TABLE.c.event_id == bindparam("event_id", type_=Integer),
        CONVERSION_TABLE.c.txn_id.is_(None),
    ),
    prepared=False,
)


@dataclass(frozen=True, slots=True)
class _Attribution:
    """What a verified click id leads to: when the click was, and its link's context."""

    ref: ClickRef
    link: LinkContext


def _attribute(
    session: Session, settings: Settings, contexts: ContextCache | None, click_id: str | None, event: str | None
) -> _Attribution | None:
    """Return what a click id leads to when its HMAC holds and its link exists, else None."""
    ref = _codec(settings.secret_key).verify(click_id)
    if ref is None:
        return None
    if contexts is None:
        link = read_context(session, ref.link_id, event)
    else:
        link = contexts.get(session, ref.link_id, event)
    return _Attribution(ref, link) if link is not None else None


def _click_and_caps(session: Session, click_id: str, offer_id: int) -> tuple[Any | None, list[CapRule]]:
    """Return the click's country and fraud flags (its row, or its still-buffered record; None when
    unknown) and the offer's conversion caps."""
    rows = session.connection().execute(_CLICK_AND_CAPS, {"click_id": click_id, "offer_id": offer_id}).all()
    caps = [CapRule(r.cap_id, r.metric, r.period, r.limit, r.scope) for r in rows if r.cap_id is not None]
    return buffered_click(session, click_id) or (rows[0] if rows[0].is_bot is not None else None), caps


def _commission(link: LinkContext, amount_minor: int | None) -> tuple[int, int]:
    assert link.model is not None
    figures = Figures(link.model, link.payout_minor, link.revenue_minor, link.payout_percent, link.revenue_percent)
    return rules.compute_commission(
        figures,
        amount_minor,
        override_payout_minor=link.override_payout_minor,
        override_payout_percent=link.override_payout_percent,
    )


# ---- the postback --------------------------------------------------------------------------------


def receive(
    session: Session,
    *,
    settings: Settings,
    received: Received,
    trace: Trace,
    now: dt.datetime,
    contexts: ContextCache | None = None,
    recorder: Recorder | None = None,
) -> Answer:
    """Judge one brand postback or pixel; raise ValidationError/Forbidden/Conflict, else return the 200 answer.

    `trace` is filled in as the request is understood, so the caller can log it whatever happens;
    a 200 answer's log line is written here, in the transaction that holds the conversion.
    `contexts` keeps links' contexts for a moment (None: read each time). With a `recorder`, a new
    conversion is recorded and committed by it, with other requests' (the session is left unused).
    """
    data = _read_params(received)
    pixel = received.source == "pixel"
    if pixel:
        # Unchecked (a cookie may hold anything): it only has to verify; the log keeps a safe copy.
        data.click_id = received.cookie_click_id
    else:
        trace.click_id = data.click_id
    trace.txn_id = data.txn_id
    trace.offer_id = data.offer_id
    if data.status is not None:
        answer = _undo(session, settings=settings, contexts=contexts, received=received, data=data, trace=trace,
                       now=now)  # fmt: skip
        write_trace(session, trace, at=now)
        return answer
    if data.click_id is None:
        where = "the click cookie" if pixel else "click_id"
        raise ValidationError(f"click_id is required (from {where})", field="click_id")
    if pixel and data.offer_id is None:
        # The pixel is not authenticated: it must at least name the offer its page converts for.
        raise ValidationError("offer_id is required: the pixel names the offer it converts for", field="offer_id")

    found = _attribute(session, settings, contexts, data.click_id, data.event)
    link = found.link if found is not None else None
    brand_id: int | None
    if pixel:
        # A browser has no token: the pixel counts only for the offer it names, when the visitor's
        # click is on that offer; it is then held for review (SPEC §5 fraud signals: "pixel").
        brand_id = link.brand_id if link is not None and link.offer_id == data.offer_id else None
    else:
        brand_id = _authenticated_brand(session, received, data, link, now)
    trace.brand_id = brand_id

    # A forged id, another network's id, or a click on another brand's (or another) offer.
    if (
        found is None
        or link is None
        or brand_id is None
        or link.brand_id != brand_id
        or (data.offer_id is not None and link.offer_id != data.offer_id)
    ):
        trace.status, trace.reason = "rejected", "unknown_click"
        write_trace(session, trace, at=now)
        return Answer(None, "rejected", "unknown_click")
    plan = _plan(ref=found.ref, link=link, data=data, trace=trace, now=now, pixel=pixel)
    if recorder is not None:
        # The request's own transaction (if any) only read: end it, the recorder writes in one of its own.
        if session.in_transaction():
            session.rollback()
        outcome = recorder.submit(plan)
        if isinstance(outcome, DomainError):
            raise outcome
        if outcome is not None:
            return outcome
    return _convert(session, plan)


def _authenticated_brand(
    session: Session, received: Received, data: _Input, link: LinkContext | None, now: dt.datetime
) -> int:
    """Return the brand whose token or signature the postback carries; raise Forbidden otherwise.

    The brand is the one the request names: the offer's (offer_id), else the token's, else (a
    signature alone) the click's. A token is never checked against the click's brand: another
    brand's click under a valid token is that brand's unknown_click, logged in its own log.
    """
    brand: tuple[int, str] | None
    if data.offer_id is not None:
        if link is not None and link.offer_id == data.offer_id:
            brand = (link.brand_id, link.brand_token)
        else:
            brand = _brand_of_offer(session, data.offer_id)
    elif data.token is not None:
        # Tokens are unique: the click's brand's token names that brand (no query); else look it up.
        if link is not None and hmac.compare_digest(data.token.encode(), link.brand_token.encode()):
            brand = (link.brand_id, link.brand_token)
        else:
            brand = _brand_by_token(session, data.token)
        if brand is None:
            raise Forbidden("postback not authenticated: wrong token")
    elif link is not None:
        brand = (link.brand_id, link.brand_token)
    else:
        brand = None
    _authenticate(received, data, brand[1] if brand else None, now)
    assert brand is not None
    return brand[0]


@dataclass(slots=True)
class Plan:
    """An authenticated, attributed, well-formed postback, ready to be judged and recorded."""

    ref: ClickRef
    link: LinkContext
    data: _Input
    trace: Trace
    now: dt.datetime
    pixel: bool
    currency: str
    amount_minor: int | None
    #: The plan judged on its click's row, both read before its batch waited in the writers' line
    #: (network/conversions/batch.py read_ahead); None: read and judged in the batch.
    judged: tuple[rules.Facts, dict[str, Any]] | None = None

    @property
    def click_id(self) -> str:
        """Return the click id the conversion is attributed to."""
        assert self.data.click_id is not None
        return self.data.click_id


class Recorder(Protocol):
    """Records plans in shared transactions (network/conversions/batch.py); see `receive`."""

    def submit(self, plan: Plan) -> Answer | DomainError | None:
        """Return the plan's answer or refusal once committed; None when it must be recorded alone."""


def _plan(*, ref: ClickRef, link: LinkContext, data: _Input, trace: Trace, now: dt.datetime, pixel: bool) -> Plan:
    """Return the plan of a postback; raise ValidationError for an unknown event or a missing amount."""
    trace.offer_id = link.offer_id
    if link.event_id is None or link.model is None:
        raise ValidationError(f"unknown event {data.event!r} for this offer", field="event")
    currency = data.currency or link.currency
    amount_minor = _parse_amount(data.amount, currency) if data.amount is not None else None
    if needs_amount(link.model):
        if amount_minor is None:
            raise ValidationError(f"amount is required for a {link.model} event", field="amount")
        if amount_minor == 0:
            raise ValidationError(f"amount must be greater than 0 for a {link.model} event", field="amount")
    return Plan(ref, link, data, trace, now, pixel, currency, amount_minor)


def judge(plan: Plan, click: Any | None) -> tuple[rules.Facts, dict[str, Any]]:
    """Return the facts of a plan and the conversion row it makes, judged on every check but the caps.

    `click` is the click's row or buffered record (its country and flags), None when unknown.
    """
    link, now = plan.link, plan.now
    facts = rules.Facts(
        now=now,
        clicked_at=plan.ref.clicked_at,
        offer_status=link.offer_status,
        partner_approved=link.partner_approved,
        window_days=link.conversion_window_days,
        offer_currency=link.currency,
        currency=plan.currency,
        countries=link.countries,
        click_country=getattr(click, "country", None),
        min_seconds=link.min_seconds,
        click_is_bot=getattr(click, "is_bot", None),
        click_is_unique=getattr(click, "is_unique", None),
        pixel=plan.pixel,
    )
    # Every check but the caps, which only the winner of the dedupe key takes, last.
    reason = rules.reject_reason(facts)
    flags = rules.fraud_flags(facts) if reason is None else []
    status, hold_until = rules.first_status(reason, flags, link.hold_days, now)
    payout = revenue = 0
    if reason is None:
        # A rejected conversion is worth nothing; an accepted one what its rule gives.
        payout, revenue = _commission(link, plan.amount_minor)
    values: dict[str, Any] = {
        "offer_id": link.offer_id,
        "event_id": link.event_id,
        "brand_id": link.brand_id,
        "partner_id": link.partner_id,
        "link_id": link.link_id,
        "click_id": plan.click_id,
        "clicked_at": plan.ref.clicked_at,
        "txn_id": plan.data.txn_id,
        "status": status,
        "reason": reason,
        "flags": flags,
        "currency": plan.currency,
        "amount_minor": plan.amount_minor,
        "payout_minor": payout,
        "revenue_minor": revenue,
        "created_at": now,
        "hold_until": hold_until,
        "status_changed_at": now,
    }
    return facts, values


def _convert(session: Session, plan: Plan) -> Answer:
    """Record one plan in the session's transaction (the path of a postback recorded alone)."""
    link, trace, now = plan.link, plan.trace, plan.now
    click, caps = _click_and_caps(session, plan.click_id, link.offer_id)
    facts, values = judge(plan, click)
    reason, payout = values["reason"], values["payout_minor"]
    # Claim the dedupe key first: a replay (even one racing this request) finds it and answers it.
    claimed = CLAIM.run(session, [values])
    if not claimed:
        return _duplicate(session, values=values, trace=trace)
    conversion = inserted(claimed[0][0], values)
    connection = session.connection()

    if reason is not None or not caps:
        _created(session, conversion, trace, now)
        return Answer(conversion.id, conversion.status, conversion.reason)

    def take_cap() -> bool:
        return cap_counters.consume(session, caps, partner_id=link.partner_id, at=now, payout_minor=payout)

    if connection.dialect.name == "sqlite":
        # The transaction holds the database's write lock from its start: consume the caps first,
        # then record the outcome once (no savepoint, nothing written twice).
        reason = rules.reject_reason(facts, take_cap=take_cap)
        if reason is not None:
            reject(connection, conversion, reason)
        _created(session, conversion, trace, now)
        return Answer(conversion.id, conversion.status, conversion.reason)
    # PostgreSQL: the counter UPDATE comes last, so its row lock (which every conversion of the
    # offer queues on) is held only until the commit that follows. If a cap is full, what was
    # written since the savepoint (history, ledger and outbox rows, the log line) is undone and
    # written again for the rejection.
    savepoint = session.begin_nested()
    _created(session, conversion, trace, now)
    reason = rules.reject_reason(facts, take_cap=take_cap)
    if reason is None:
        savepoint.commit()
        return Answer(conversion.id, conversion.status, conversion.reason)
    savepoint.rollback()
    reject(connection, conversion, reason)
    _created(session, conversion, trace, now)
    return Answer(conversion.id, conversion.status, conversion.reason)


_NEW_CONVERSION = Conversion.__mapper__.class_manager.new_instance


def inserted(conversion_id: int, values: Mapping[str, Any]) -> Conversion:
    """Return the conversion just inserted with `values`, known in full without reading it back.

    A transient object that the signal's receivers read and nothing writes; its attributes are set
    as loaded ones (without the ORM's per-attribute events, which cost more than the insert).
    """
    conversion = _NEW_CONVERSION()
    conversion.__dict__.update(values, id=conversion_id)
    return conversion


def reject(connection: Any, conversion: Conversion, reason: str) -> None:
    """Make a just-inserted conversion rejected (a cap was full), in the database and on the object."""
    connection.execute(_REJECT, {"b_id": conversion.id, "reason": reason})
    conversion.status, conversion.reason, conversion.flags, conversion.hold_until = "rejected", reason, [], None
    conversion.payout_minor = conversion.revenue_minor = 0


def creator(source: str) -> str:
    """Return the history actor of a conversion a postback or a pixel created."""
    return "pixel" if source == "pixel" else "postback"


def _created(session: Session, conversion: Conversion, trace: Trace, now: dt.datetime) -> None:
    """Record a new conversion: its history line, the signal, its log line."""
    _record(session, conversion, None, conversion.status, conversion.reason, actor=creator(trace.source), at=now)
    trace.conversion_id, trace.status, trace.reason = conversion.id, conversion.status, conversion.reason
    write_trace(session, trace, at=now)


def holder(session: Session, values: dict[str, Any]) -> Any:
    """Return the conversion (id, status, reason, amount, currency) that holds a new row's dedupe key."""
    if values["txn_id"] is not None:
        params = {"offer_id": values["offer_id"], "event_id": values["event_id"], "txn_id": values["txn_id"]}
        (row,) = FIRST_BY_TXN.all(session, params)
    else:
        (row,) = FIRST_BY_CLICK.all(session, {"click_id": values["click_id"], "event_id": values["event_id"]})
    return _First(*row)


def replay(values: dict[str, Any], first: Any) -> tuple[Answer | Conflict, dict[str, Any]]:
    """Return the answer to a replay of `first` (the conversion holding the key), or the 409 of a
    txn_id sent again with another amount, and what the log line says of it."""
    fields = {"conversion_id": first.id, "status": first.status, "reason": first.reason, "duplicate": True}
    if values["txn_id"] is not None and (first.amount_minor, first.currency) != (
        values["amount_minor"],
        values["currency"],
    ):
        conflict = Conflict(
            f"txn_id {values['txn_id']!r} is already conversion {first.id} with another amount; it was not changed",
            code="txn_id_amount_conflict",
        )
        return conflict, fields
    return Answer(first.id, first.status, first.reason, duplicate=True), fields


def _duplicate(session: Session, *, values: dict[str, Any], trace: Trace) -> Answer:
    outcome, fields = replay(values, holder(session, values))
    for name, value in fields.items():
        setattr(trace, name, value)
    if isinstance(outcome, Conflict):
        raise outcome
    write_trace(session, trace, at=values["created_at"])
    return outcome


def _undo(
    session: Session,
    *,
    settings: Settings,
    contexts: ContextCache | None,
    received: Received,
    data: _Input,
    trace: Trace,
    now: dt.datetime,
) -> Answer:
    """Reverse or reject an earlier conversion named by txn_id, among the authenticated brand's offers only."""
    if data.txn_id is None:
        raise ValidationError("txn_id is required with status", field="txn_id")
    found = None
    if data.click_id is not None and data.offer_id is None and data.token is None:
        found = _attribute(session, settings, contexts, data.click_id, None)  # a signature alone: the click's brand
    brand_id = _authenticated_brand(session, received, data, found.link if found else None, now)
    trace.brand_id = brand_id

    query = select(Conversion).where(Conversion.brand_id == brand_id, Conversion.txn_id == data.txn_id)
    if data.offer_id is not None:
        query = query.where(Conversion.offer_id == data.offer_id)
    if data.click_id is not None:
        query = query.where(Conversion.click_id == data.click_id)
    if data.event is not None:
        query = query.join(OfferEvent, OfferEvent.id == Conversion.event_id).where(OfferEvent.key == data.event)
    named = session.scalars(query.limit(2)).all()
    if not named:
        trace.reason = "unknown_txn_id"
        return Answer(None, None, "unknown_txn_id")
    if len(named) > 1:
        raise ValidationError("txn_id names several conversions; send event or offer_id too", field="txn_id")
    conversion = named[0]
    trace.offer_id = conversion.offer_id
    assert data.status is not None
    target = rules.undo_target(conversion.status, data.status)
    if target is not None:
        reason = data.reason or f"{data.status} by brand postback"
        if not transition(session, conversion, target, reason, actor="postback", at=now):
            target = None  # a concurrent change won; answer what it left
    trace.conversion_id, trace.status, trace.reason = conversion.id, conversion.status, conversion.reason
    trace.duplicate = target is None
    return Answer(conversion.id, conversion.status, conversion.reason, duplicate=target is None)


# ---- statuses ------------------------------------------------------------------------------------


def _record(
    session: Session,
    conversion: Conversion,
    old: str | None,
    new: str,
    reason: str | None,
    *,
    actor: str,
    at: dt.datetime,
) -> None:
    """Write the history line and tell the ledger and the outbox, in this transaction."""
    HISTORY_LINES.run(session, [history_row(conversion.id, old, new, reason, actor=actor, at=at)])
    status_changed.send(session=session, conversion=conversion, old_status=old, new_status=new, at=at, reason=reason)


def history_row(
    conversion_id: int, old: str | None, new: str, reason: str | None, *, actor: str, at: dt.datetime
) -> dict[str, Any]:
    """Return a conversion_history row: who moved the conversion from `old` to `new`, when and why."""
    return {"conversion_id": conversion_id, "at": at, "old_status": old, "new_status": new, "reason": reason,
            "actor": actor}  # fmt: skip


def transition(
    session: Session, conversion: Conversion, target: str, reason: str | None, *, actor: str, at: dt.datetime,
    due_by: dt.datetime | None = None,
) -> bool:  # fmt: skip
    """Move a conversion to `target` if its status (as stored now) allows it; return whether it moved.

    The UPDATE names the status it expects, so the history and the signal always carry the true
    old status (the ledger treats approved -> rejected and pending -> rejected differently).
    """
    sources = rules.TRANSITIONS[target]
    values: dict[str, Any] = {"status": target, "status_changed_at": at, "reason": reason, "hold_until": None}
    expected = conversion.status
    # A concurrent change may move it between our read and our UPDATE; look again, a few times.
    for _attempt in range(3):
        if expected not in sources:
            return False
        condition = (Conversion.id == conversion.id) & (Conversion.status == expected)
        if due_by is not None:
            condition &= Conversion.hold_until.is_not(None) & (Conversion.hold_until <= due_by)
        result = session.execute(
            update(Conversion).where(condition).values(**values), execution_options={"synchronize_session": False}
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            break
        session.refresh(conversion)
        if due_by is not None:
            return False
        expected = conversion.status
    else:
        return False
    for name, value in values.items():
        # What the UPDATE wrote, without marking the object dirty (no second UPDATE at flush).
        set_committed_value(conversion, name, value)
    _record(session, conversion, expected, target, reason, actor=actor, at=at)
    return True


def change_status(
    session: Session, principal: Principal, conversion_id: int, *, status: str, reason: str | None, now: dt.datetime
) -> Conversion:
    """Approve, reject or reverse a conversion (its brand, admin); 409 when its status does not allow it."""
    require(principal, Role.ADMIN, Role.BRAND)
    conversion = get_conversion(session, principal, conversion_id)
    if status not in rules.TRANSITIONS:
        raise ValidationError("status must be approved, rejected or reversed", field="status")
    if conversion.status == status:
        return conversion  # asked twice: already done
    if not rules.can_transition(conversion.status, status) or not transition(
        session, conversion, status, reason, actor=principal.label, at=now
    ):
        raise Conflict(f"a {conversion.status} conversion cannot become {status}", code="invalid_transition")
    return conversion


# ---- reading -------------------------------------------------------------------------------------


def get_conversion(session: Session, principal: Principal, conversion_id: int) -> Conversion:
    """Return a conversion the principal may see, or 404."""
    conversion = session.get(Conversion, conversion_id)
    if conversion is None or not _visible(principal, conversion):
        raise NotFound("conversion not found")
    return conversion


def _visible(principal: Principal, conversion: Conversion) -> bool:
    if principal.role in (Role.ADMIN, Role.FINANCE):
        return True
    if principal.role is Role.BRAND:
        return conversion.brand_id == principal.brand_id
    if principal.role is Role.PARTNER:
        return conversion.partner_id == principal.partner_id
    return False


def _scoped(query: Select[Any], principal: Principal) -> Select[Any]:
    if principal.role is Role.BRAND:
        return query.where(Conversion.brand_id == principal.brand_id)
    if principal.role is Role.PARTNER:
        return query.where(Conversion.partner_id == principal.partner_id)
    return query


def list_conversions(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    partner_id: int | None = None,
    status: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    after: int | None = None,
    subs: Mapping[str, str] | None = None,
) -> list[Conversion]:
    """Return the conversions the principal may see, filtered, one page ordered by id.

    `subs` (sub1..sub5 -> value) narrows to conversions whose click carried those sub ids (its own or
    its link's defaults, as reports count them: the link's when the click row is not written yet).
    """
    query = where_given(
        _scoped(select(Conversion), principal),
        (Conversion.offer_id, offer_id),
        (Conversion.partner_id, partner_id),
        (Conversion.status, status),
    )
    if since is not None:
        query = query.where(Conversion.created_at >= as_utc(since))
    if until is not None:
        query = query.where(Conversion.created_at < as_utc(until))
    if subs:
        query = query.join(Link, Link.id == Conversion.link_id).outerjoin(Click, Click.id == Conversion.click_id)
        for name, value in subs.items():
            if name not in SUB_IDS:
                raise ValidationError(f"{name}: not a sub id", field=name)
            query = query.where(func.coalesce(getattr(Click, name), getattr(Link, name)) == value)
    return list(session.scalars(paged(query, Conversion.id, limit=limit, after=after)))


def history(session: Session, principal: Principal, conversion_id: int) -> list[ConversionHistory]:
    """Return a conversion's status history (its brand, admin, finance; a partner its own)."""
    conversion = get_conversion(session, principal, conversion_id)
    return list(
        session.scalars(
            select(ConversionHistory)
            .where(ConversionHistory.conversion_id == conversion.id)
            .order_by(ConversionHistory.id)
        )
    )


def event_keys(session: Session, event_ids: Sequence[int]) -> dict[int, str]:
    """Return the key of each event id."""
    if not event_ids:
        return {}
    rows = session.execute(select(OfferEvent.id, OfferEvent.key).where(OfferEvent.id.in_(set(event_ids))))
    return {row.id: row.key for row in rows}


def brands_sharing_txn_id(session: Session, brand_ids: Sequence[int]) -> set[int]:
    """Return which of the brands let partners see their txn ids."""
    if not brand_ids:
        return set()
    return set(session.scalars(select(Brand.id).where(Brand.id.in_(set(brand_ids)), Brand.share_txn_id.is_(True))))


def list_postback_log(
    session: Session,
    principal: Principal,
    *,
    offer_id: int | None = None,
    click_id: str | None = None,
    txn_id: str | None = None,
    http_status: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
    after: int | None = None,
) -> list[PostbackLog]:
    """Return postback log lines: a brand its own, admin all."""
    require(principal, Role.ADMIN, Role.BRAND)
    query = select(PostbackLog)
    if principal.role is Role.BRAND:
        query = query.where(PostbackLog.brand_id == principal.brand_id)
    query = where_given(
        query,
        (PostbackLog.offer_id, offer_id),
        (PostbackLog.click_id, click_id),
        (PostbackLog.txn_id, txn_id),
        (PostbackLog.http_status, http_status),
    )
    if since is not None:
        query = query.where(PostbackLog.received_at >= as_utc(since))
    if until is not None:
        query = query.where(PostbackLog.received_at < as_utc(until))
    return list(session.scalars(paged(query, PostbackLog.id, limit=limit, after=after)))
