"""Intake of a postback or pixel request: its parameters, its authentication, and its log line.

A postback is judged in this order: malformed input (400), then authentication (403), then the
pipeline of SPEC §5. The brand is the one the request names (offer_id, else the token, else a
signature's click) and only an authenticated brand's log shows the request.

API: `Received` (the request as the web layer read it), `Trace` and `start_trace`, `log_row`,
`write_trace`, `LOG_LINES` (its postback log line), `Answer` (the 200 answer), `Params` and
`read_params` (its parameters, checked), `parse_amount`, `sign` and `authenticated_brand` (its
token or X-Signature), `PARAMS` and `SECRET_PARAMS`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from network import money
from network import text as text_rule
from network.accounts.models import Brand
from network.conversions.context import LinkContext
from network.conversions.models import PostbackLog
from network.db import InsertMany
from network.errors import Forbidden, ValidationError
from network.offers.models import Offer

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
    "customer_id",
    "coupon",
)
#: Never stored in the postback log.
SECRET_PARAMS = frozenset({"token"})
#: How far a signature's timestamp may be from now, either side.
SIGNATURE_WINDOW = dt.timedelta(minutes=5)
#: How long each parameter may be, in the order they are checked; what a longer one is told.
_MAX_LEN = {"click_id": 64, "event": 64, "txn_id": 255, "currency": 3, "status": 16, "offer_id": 18, "reason": 255,
            "customer_id": 255, "coupon": 64}  # fmt: skip
_MAX_AMOUNT_LEN = 32
#: Ids are INTEGER columns (PostgreSQL's is 32-bit): larger ones are refused as input, not sent.
MAX_ID = 2**31 - 1
#: Control characters and lone surrogates (network.text's rule): never part of an id, a key or an
#: amount, and NUL cannot be stored in a PostgreSQL text column.
#: Unix seconds have 10 digits until the year 2286; a longer t= is not a time.
_MAX_TIMESTAMP_DIGITS = 12
#: What the log keeps of each parameter (the whole request is never needed to trace a discrepancy).
_LOG_VALUE_LEN = 512
_LOG_PARAMS = 50


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
    request_id: str | None = None


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
    request_id: str | None = None


def _loggable(text: str, limit: int) -> str:
    """Return `text` as a log column can hold it (the one text rule, newlines replaced too)."""
    return text_rule.storable(text, limit, free_text=False)


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
        request_id=received.request_id,
    )


#: The postback log row's columns, as `log_row` makes them.
LOG_KEYS = (
    "received_at", "source", "method", "brand_id", "offer_id", "click_id", "txn_id", "params", "http_status",
    "conversion_id", "status", "reason", "duplicate", "remote_addr", "request_id",
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
        request_id=trace.request_id,
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
class Params:
    """A postback's parameters, checked; an empty one is None."""

    click_id: str | None = None
    event: str | None = None
    amount: str | None = None
    currency: str | None = None
    txn_id: str | None = None
    status: str | None = None
    token: str | None = None
    offer_id: int | None = None
    reason: str | None = None
    #: The brand's id for its customer: binds it, or attributes to its binding without a click.
    customer_id: str | None = None
    #: A coupon code: attributes to its partner without a click (customers/rules.py).
    coupon: str | None = None


def _given_once(received: Received) -> dict[str, str]:
    """Return the value of each parameter a postback reads (transaction_id as click_id); 400 for one given twice."""
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
    return values


def _check_text(values: Mapping[str, str]) -> None:
    """Raise ValidationError for a value no text column holds, or one longer than its parameter's limit."""
    for name, value in values.items():
        why = text_rule.problem(value)
        if why is not None:
            raise ValidationError(f"{name} {why}", field=name)
    for name, limit in _MAX_LEN.items():
        if len(values.get(name, "")) > limit:
            raise ValidationError(f"{name} is longer than {limit} characters", field=name)
    if len(values.get("amount", "")) > _MAX_AMOUNT_LEN:
        raise ValidationError("amount must be a plain decimal number like 12.50", field="amount")


def _offer_id(value: str, _params: Mapping[str, str | None], _received: Received) -> None:
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_ID:
        raise ValidationError(f"offer_id must be a whole number from 1 to {MAX_ID}", field="offer_id")


def _status(value: str, _params: Mapping[str, str | None], received: Received) -> None:
    if value not in ("reversed", "rejected"):
        raise ValidationError("status must be reversed or rejected", field="status")
    if received.source == "pixel":
        raise ValidationError("a pixel cannot change a conversion's status", field="status")


def _currency(value: str, _params: Mapping[str, str | None], _received: Received) -> None:
    try:
        money.check_currency(value)
    except money.MoneyError as exc:
        raise ValidationError(f"currency: {exc}", field="currency") from exc


def _amount(value: str, params: Mapping[str, str | None], _received: Received) -> None:
    # Syntax and sign now; the decimals once the offer, and so its currency, is known (a precision
    # error names the currency that refuses it).
    currency = params["currency"]
    if currency is not None:
        parse_amount(value, currency)
        return
    try:
        money.check_amount_syntax(value)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc


#: The checks of the parameters that have one, in the order they are made (given values only).
_CHECKS: dict[str, Callable[[str, Mapping[str, str | None], Received], None]] = {
    "offer_id": _offer_id,
    "status": _status,
    "currency": _currency,
    "amount": _amount,
}


def read_params(received: Received) -> Params:
    """Return the request's parameters, checked; raise ValidationError naming the first bad one."""
    values = _given_once(received)
    _check_text(values)
    # An empty value is the same as none (templated postbacks often leave a macro empty).
    given: dict[str, str | None] = {name: values.get(name) or None for name in PARAMS if name != "transaction_id"}
    for name, check in _CHECKS.items():
        value = given[name]
        if value is not None:
            check(value, given, received)
    offer_id = given.pop("offer_id")
    return Params(**given, offer_id=int(offer_id) if offer_id else None)


def parse_amount(text: str, currency: str) -> int:
    """Return a sale amount in minor units of `currency`; raise ValidationError naming amount."""
    try:
        return money.parse_amount(text, currency)
    except money.MoneyError as exc:
        raise ValidationError(f"amount: {exc}", field="amount") from exc


# ---- authentication ------------------------------------------------------------------------------

# Built once: the hot path executes them with parameters only (SQLAlchemy's compiled cache hits).
_BRAND_BY_TOKEN = select(Brand.id, Brand.postback_token).where(Brand.postback_token == bindparam("token"))
_BRAND_OF_OFFER = (
    select(Brand.id, Brand.postback_token)
    .join(Offer, Offer.brand_id == Brand.id)
    .where(Offer.id == bindparam("offer_id"))
)


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


def _authenticate(received: Received, data: Params, brand_token: str | None, now: dt.datetime) -> None:
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


def authenticated_brand(
    session: Session, received: Received, data: Params, link: LinkContext | None, now: dt.datetime
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
