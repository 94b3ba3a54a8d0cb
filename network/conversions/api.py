"""HTTP: brand postbacks and the pixel (plain Flask, hot path), conversions and the postback log (API)."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import unquote_plus

import flask
from flask import Response, request
from flask.views import MethodView
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from network import green, metrics, outage, web
from network.clock import now_utc
from network.conversions import groupcommit, openapi, service, spool
from network.conversions.context import ContextCache
from network.conversions.schemas import (
    ConversionListArgs,
    ConversionListSchema,
    ConversionSchema,
    PostbackLogArgs,
    PostbackLogListSchema,
    StatusInSchema,
    dump_conversion,
    dump_log,
)
from network.deadletters import isolate
from network.errors import REQUEST_ID, DomainError, ValidationError
from network.schemas import page
from network.tracking.service import CLICK_COOKIE

log = logging.getLogger(__name__)

#: The smallest transparent GIF.
GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

postbacks = flask.Blueprint("postbacks", __name__)
_CONTEXTS = "network.conversions.contexts"
_RECORDER = "network.conversions.recorder"
_SPOOL = "network.conversions.spool"

blp = web.Blueprint("conversions", __name__, url_prefix="/api/v1", description="Conversions and the postback log")
blp.before_request(web.authenticate)


# ---- reading a postback request ------------------------------------------------------------------


def _json_params(body: bytes) -> dict[str, list[str]]:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, list[Any]]:
        grouped: dict[str, list[Any]] = {}
        for key, value in items:
            grouped.setdefault(key, []).append(value)
        return grouped

    try:
        # Numbers keep their literal text: floats never touch money, and NaN/1e9 are refused later.
        data = json.loads(body, object_pairs_hook=pairs, parse_float=str, parse_int=str, parse_constant=str)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("the body is not valid JSON", field="body") from exc
    if not isinstance(data, dict):
        raise ValidationError("the JSON body must be an object", field="body")
    params: dict[str, list[str]] = {}
    for name, values in data.items():
        kept = []
        for value in values:
            if value is None:
                continue
            if not isinstance(value, str):
                raise ValidationError(f"{name} must be a string or a number", field=name)
            kept.append(value)
        params[name] = kept
    return params


def _read_request(req: flask.Request, source: str) -> service.Received:
    """Return every parameter of the request (query, then form or JSON body) with its raw signed bytes."""
    args = req.args
    params: dict[str, list[str]] = {name: args.getlist(name) for name in args}
    raw = req.query_string
    query_on_post = False
    if req.method == "POST":
        raw = req.get_data(cache=True)
        query_on_post = bool(req.query_string)
        body: dict[str, list[str]] = {}
        if req.mimetype == "application/json" or req.mimetype.endswith("+json"):
            body = _json_params(raw)
        elif req.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            body = {name: req.form.getlist(name) for name in req.form}
        elif raw.strip():
            raise ValidationError("send the parameters as a form or a JSON object", field="body")
        for name, values in body.items():
            params.setdefault(name, []).extend(values)
    return service.Received(
        source=source,
        method=req.method,
        params=params,
        raw=raw,
        signature=req.headers.get("X-Signature"),
        query_on_post=query_on_post,
        remote_addr=req.remote_addr,
        cookie_click_id=req.cookies.get(CLICK_COOKIE) if source == "pixel" else None,
        request_id=req.environ.get(REQUEST_ID),
    )


class _LazySession:
    """The request's session, made when first used: a postback its batch records uses none of its own."""

    __slots__ = ("_make", "_session")

    def __init__(self, make: Callable[[], Session]) -> None:
        self._make = make
        self._session: Session | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._make()
        return getattr(self._session, name)

    def in_transaction(self) -> bool:
        return self._session is not None and self._session.in_transaction()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _received(req: flask.Request, source: str, now: Any) -> tuple[service.Received, DomainError | None]:
    """Return what the request carries, and why it is malformed (logged and answered as a refusal)."""
    try:
        return _read_request(req, source), None
    except (DomainError, HTTPException) as error:
        received = service.Received(
            source=source,
            method=req.method,
            params={name: req.args.getlist(name) for name in req.args},
            remote_addr=req.remote_addr,
            request_id=req.environ.get(REQUEST_ID),
        )
        if isinstance(error, HTTPException):
            # A body the server would not read (too large): logged with its status, then answered.
            _log_failure(service.start_trace(received), now, status=error.code or 400, reason=error.name)
            raise
        return received, error


def _answer(
    session: Session, extensions: dict[str, Any], received: service.Received, trace: service.Trace, now: Any
) -> service.Answer:
    """Judge the request; a new conversion is recorded by the group commit, or alone when its batch failed."""
    judged = service.receive(
        session, settings=extensions["network.settings"], received=received, trace=trace, now=now,
        contexts=extensions[_CONTEXTS],
    )  # fmt: skip
    if isinstance(judged, service.Answer):
        return judged
    # The request's own transaction only read: end it before waiting for the group commit, which
    # writes in a transaction of its own (on SQLite, one writer at a time).
    session.rollback()
    outcome = extensions[_RECORDER].submit(judged)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome if outcome is not None else service.record_alone(session, judged)


def _refused(session: Session, trace: service.Trace, error: DomainError, now: Any) -> None:
    """Roll back a refused request and commit only its log line."""
    session.rollback()
    trace.http_status = error.status
    trace.reason = error.message[:255]
    if error.status != 409:
        trace.conversion_id = trace.status = None
    service.write_trace(session, trace, at=now)
    session.commit()


def _failed(
    extensions: dict[str, Any], received: service.Received, trace: service.Trace, now: Any, error: Exception
) -> None:
    """Log a request that failed unexpectedly: spooled while the database is unavailable, else logged now."""
    if outage.is_unavailable(error):
        # Answered 503 (network/errors.py); its log line waits for the database (spool.py).
        tokens = received.params.get("token") or ()
        extensions[_SPOOL].keep(trace, at=now, token=tokens[0] if tokens else None)
        return
    if isolate.refused(error):
        # Recorded alone (its batch failed otherwise) and refused: kept for an operator, and its
        # log line made storable (the refused value may be in it too).
        groupcommit.keep_refused(extensions["network.db"], trace, now, error)
    _log_failure(trace, now)


@metrics.counts_postbacks
def _handle(app: flask.Flask, req: flask.Request, source: str) -> service.Answer:
    """Judge the request and log it; the conversion and its log line commit before the answer.

    A refused request (400/403/409) is rolled back and only its log line is committed; so is one
    that failed unexpectedly (500), from a fresh session.
    """
    now = now_utc()
    received, parse_error = _received(req, source, now)
    trace = service.start_trace(received)
    extensions = app.extensions
    session = cast(Session, _LazySession(extensions["network.db"].sessionmaker))
    try:
        try:
            if parse_error is not None:
                raise parse_error
            answer = _answer(session, extensions, received, trace, now)
        except DomainError as error:
            _refused(session, trace, error, now)
            raise
        if session.in_transaction():  # not when the group commit recorded it
            session.commit()
        return answer
    except DomainError:
        raise
    except Exception as error:
        session.rollback()
        _failed(extensions, received, trace, now, error)
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _log_failure(trace: service.Trace, now: Any, *, status: int = 500, reason: str = "internal error") -> None:
    """Commit the log line of a request that failed unexpectedly (500), in a session of its own."""
    trace.http_status, trace.reason = status, reason[:255]
    trace.conversion_id = trace.status = None
    trace.duplicate = False
    try:
        with web.database().session_scope() as session:
            service.write_trace(session, trace, at=now)
    except Exception:  # the database itself may be what failed: the error handler logs the cause
        log.warning("could not log a failed postback in the postback log", exc_info=True)


@postbacks.route("/postback", methods=["GET", "POST"])
def postback() -> Any:
    """Record a brand's conversion (or undo one by txn_id); 200 whatever the verdict, with its reason."""
    # The proxies resolved once: each read through one costs a context lookup.
    req = request._get_current_object()  # type: ignore[attr-defined]
    if req.method == "HEAD":
        # Flask answers HEAD for every GET route; a HEAD (a link checker) must not record anything.
        return Response(status=405, headers={"Allow": "GET, POST"})
    app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
    return app.json.response(_handle(app, req, "postback").as_dict())  # flask.jsonify, without its lookup


@postbacks.route("/pixel", methods=["GET"])
def pixel() -> Response:
    """Record a conversion from the browser's click cookie; always a 1x1 GIF."""
    req = request._get_current_object()  # type: ignore[attr-defined]
    try:
        if req.method != "HEAD":  # prefetchers and link checkers record nothing
            _handle(flask.current_app._get_current_object(), req, "pixel")  # type: ignore[attr-defined]
    except DomainError:
        pass  # logged in the postback log; a browser can do nothing with an error
    except Exception as error:  # a pixel never breaks the page it sits on
        if outage.is_unavailable(error):
            outage.REQUESTS.note(error, "pixels not recorded")
        else:
            log.exception("pixel failed")
    response = Response(GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, max-age=0"
    return response


# ---- secrets never reach the access logs ---------------------------------------------------------

#: One `name=value` pair of a query string in a log line.
_PAIR = re.compile(r"([?&])([^=&\s]*)=([^&\s]*)")


def _redact_pair(match: re.Match[str]) -> str:
    # The name as the app reads it (percent- and plus-decoded): `%74oken=` is a token too.
    if unquote_plus(match.group(2)).strip().lower() in service.SECRET_PARAMS:
        return f"{match.group(1)}{match.group(2)}=[redacted]"
    return match.group(0)


class RedactTokens(logging.Filter):
    """Blanks the value of every `token` parameter in access log lines (werkzeug, gunicorn), however spelt."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with the tokens removed."""
        message = record.getMessage()
        if "=" in message:
            redacted = _PAIR.sub(_redact_pair, message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


def _redact_access_logs() -> None:
    for name in ("werkzeug", "gunicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


# ---- API -----------------------------------------------------------------------------------------


def _dump_many(items: list[Any]) -> list[dict[str, Any]]:
    session, principal = web.session(), web.principal()
    keys = service.event_keys(session, [c.event_id for c in items])
    sharing = service.brands_sharing_txn_id(session, [c.brand_id for c in items]) if principal.partner_id else set()
    return [
        dump_conversion(c, principal, event_key=keys.get(c.event_id, ""), share_txn_id=c.brand_id in sharing)
        for c in items
    ]


@blp.route("/conversions")
class Conversions(MethodView):
    @blp.arguments(ConversionListArgs, location="query")
    @blp.response(200, ConversionListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List conversions: a brand its offers' (never payout), a partner its own (never revenue)."""
        items = service.list_conversions(web.replica_session(), web.principal(), **args)  # may be a little behind
        return page(_dump_many(items), args["limit"])


@blp.route("/conversions/<int:conversion_id>")
class ConversionItem(MethodView):
    @blp.response(200, ConversionSchema)
    def get(self, conversion_id: int) -> dict[str, Any]:
        """Read a conversion with its status history."""
        session, principal = web.session(), web.principal()
        conversion = service.get_conversion(session, principal, conversion_id)
        out = _dump_many([conversion])[0]
        if "flags" in out:  # brand, admin, finance
            out["history"] = service.history(session, principal, conversion_id)
        return out


@blp.route("/conversions/<int:conversion_id>/status")
class ConversionStatus(MethodView):
    @blp.arguments(StatusInSchema)
    @blp.response(200, ConversionSchema)
    def post(self, data: dict[str, Any], conversion_id: int) -> dict[str, Any]:
        """Approve, reject or reverse a conversion (its brand, admin); 409 when its status does not allow it."""
        conversion = service.change_status(
            web.session(), web.principal(), conversion_id, status=data["status"], reason=data["reason"], now=now_utc()
        )
        return _dump_many([conversion])[0]


@blp.route("/postback-log")
class PostbackLogList(MethodView):
    @blp.arguments(PostbackLogArgs, location="query")
    @blp.response(200, PostbackLogListSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List postbacks and pixels received, with their outcome (a brand its own, admin all)."""
        lines = service.list_postback_log(web.replica_session(), web.principal(), **args)  # may be a little behind
        return page([dump_log(line) for line in lines], args["limit"])


def register(app: flask.Flask, api: Any) -> None:
    """Add the postback and pixel endpoints and the conversions API to the app."""
    settings = app.extensions["network.settings"]
    # Tests change offers between requests and expect the next postback to see it.
    app.extensions[_CONTEXTS] = ContextCache(max_age=0.0 if settings.testing else 0.5)
    # New conversions of concurrent requests share transactions (network/conversions/groupcommit.py).
    database = app.extensions["network.db"]
    app.extensions[_RECORDER] = groupcommit.GroupCommit(
        functools.partial(groupcommit.record_committed, database),
        refuse=functools.partial(groupcommit.refuse, database),
        gate=database.writers_queue,
        # Only where there is a line to shorten (SQLite): on PostgreSQL the read is one round trip
        # either way, and inside the batch it costs no connection of its own.
        ahead=functools.partial(groupcommit.read_ahead, database) if database.one_writer else None,
        # Under gevent (the README's workers) a leader lets the requests its worker has
        # already received reach the queue first: on the 2-core machine batches grew from about
        # 9.5 to 12.5 postbacks and the worker's CPU per postback fell 7-9 % (bench/postbacks).
        # (Under --preload the app is made before gevent patches: its leaders then do not give way.)
        gather=green.give_way if green.patched() else None,
    )
    # Log lines of postbacks refused while the database was unavailable, until it is back.
    app.extensions[_SPOOL] = spool.Spool(database, settings)
    app.register_blueprint(postbacks)
    api.register_blueprint(blp)
    openapi.document(app, api)
    _redact_access_logs()
