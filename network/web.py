"""Request plumbing for api modules: the blueprint class, the request's session, principal and settings."""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any

import flask_smorest
from flask import Flask, Response, current_app, request
from flask.views import MethodView
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from network import errors
from network.accounts import service as accounts
from network.auth import Principal, Role
from network.clock import now_utc
from network.partners.addresses import TOUCH_EVERY, AddressBook
from network.schemas import StrictSchema

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from network.config import Settings
    from network.db import Database

log = logging.getLogger(__name__)
#: The app's partners.addresses.AddressBook (what this process wrote lately).
_ADDRESSES = "network.partner_addresses"


#: The deepest JSON a request body may be: our bodies are 3 levels deep, and Python's parser fails
#: (RecursionError) near 1,000.
MAX_JSON_DEPTH = 32
#: A JSON string literal (brackets inside one do not nest).
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Return whether a JSON text nests arrays and objects deeper than `limit` (read before parsing it)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # every real body: nothing more to look at
    depth = 0
    for byte in _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS):
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class StrictParser(FlaskParser):
    """Parses input with each schema's own `unknown` (RAISE for StrictSchema), in every location.

    webargs by default drops unknown query parameters, so `?sort=amount;drop table x` would pass
    unnoticed; here it is refused. Bad input is 400 everywhere (schema errors and domain rule
    errors alike), with the fields named.
    """

    DEFAULT_VALIDATION_STATUS = 400

    def __init__(self) -> None:
        # unknown=None: pass nothing to Schema.load, so the schema's Meta.unknown decides.
        super().__init__(unknown=None)

    def _raw_load_json(self, req: Any) -> Any:
        """Return the request's JSON body; a body nested too deeply is a 400, never a RecursionError's 500."""
        if not is_json_request(req):
            return core.missing
        raw = req.get_data(cache=True)
        too_deep = [f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"]
        if json_too_deep(raw):
            abort(400, messages={"json": too_deep})
        try:
            return core.parse_json(raw)
        except RecursionError:
            abort(400, messages={"json": too_deep})


class Blueprint(flask_smorest.Blueprint):
    """The flask-smorest Blueprint every API module uses: strict input, 400 on bad input.

    An operation without a query schema refuses any query parameter (400 naming it), as one with
    a StrictSchema refuses those it does not declare: nothing a client sends is silently ignored.
    """

    ARGUMENTS_PARSER = StrictParser()

    def add_url_rule(
        self, rule: str, endpoint: str | None = None, view_func: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        """Register the view, its query-less operations refusing query parameters."""
        if isinstance(view_func, type) and issubclass(view_func, MethodView):
            for method in view_func.methods or ():
                function = getattr(view_func, method.lower())
                if not _reads_query(function):
                    setattr(view_func, method.lower(), _refusing_query(function))
        elif view_func is not None and not _reads_query(view_func):
            view_func = _refusing_query(view_func)
        super().add_url_rule(rule, endpoint, view_func, *args, **kwargs)


#: The query of an operation that declares none: a schema without fields, so every parameter is unknown.
_NO_QUERY = StrictSchema()


def _reads_query(function: Any) -> bool:
    parameters = getattr(function, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(p["in"] in ("query", "querystring") for p in parameters)


def _refusing_query(function: Any) -> Any:
    @functools.wraps(function)  # keeps flask-smorest's _apidoc, so the docs are unchanged
    def view(*args: Any, **kwargs: Any) -> Any:
        if request.args:
            Blueprint.ARGUMENTS_PARSER.parse(_NO_QUERY, request, location="query")
        return function(*args, **kwargs)

    return view


def database() -> Database:
    """Return the app's database."""
    return current_app.extensions["network.db"]


def settings() -> Settings:
    """Return the app's settings."""
    return current_app.extensions["network.settings"]


def _state() -> dict[str, Any]:
    # Per request, not flask.g: an app context (and so g) can outlive one request.
    return request.environ.setdefault("network.state", {})


def session() -> Session:
    """Return this request's session; the request commits it once, after the view succeeds."""
    state = _state()
    if "session" not in state:
        state["session"] = database().session()
    return state["session"]


def replica_session() -> Session:
    """Return this request's read-only session on the replica, rolled back at the end; without one, `session()`.

    Only for answers that may be a little behind: `Database.replica_session` states the rule.
    """
    db = database()
    if not db.has_replica:
        return session()  # as before there were replicas
    state = _state()
    if "replica" not in state:
        state["replica"] = db.replica_session()
    return state["replica"]


def _end_replica() -> None:
    reader = _state().pop("replica", None)
    if reader is not None:
        try:
            _rollback(reader)
        finally:
            reader.close()


def commit_before_calling_out() -> None:
    """Commit the request's work so far, before a slow call out (a partner's server, Stripe, a mail).

    No transaction stays open across the call: on SQLite it would hold the database's only write
    lock, and every other writer would wait (RELIABILITY.md 15). What the request does afterwards
    runs in a new transaction, committed once the view succeeds, as always.
    """
    db_session = _state().get("session")
    if db_session is not None:
        db_session.commit()


def principal() -> Principal:
    """Return who the request's API key acts as (401 when missing or unknown)."""
    state = _state()
    if "principal" not in state:
        state["principal"] = found = _authenticate(request.headers.get("Authorization"))
        if found.role is Role.PARTNER and found.partner_id is not None:
            # Written once the view has succeeded, in its transaction: not before the body is read.
            state["partner_seen"] = found.partner_id
    return state["principal"]


def partner_seen(partner_id: int) -> None:
    """Keep the request's address as one the partner uses (self-referral), at most once per partner and address a while."""
    book = current_app.extensions.get(_ADDRESSES)
    if book is None:
        book = AddressBook(every=0.0 if settings().testing else TOUCH_EVERY)
        current_app.extensions[_ADDRESSES] = book
    book.seen(session(), partner_id, request.remote_addr, now_utc())


def _authenticate(authorization: str | None) -> Principal:
    db = database()
    if not db.one_writer:
        return accounts.authenticate(session(), authorization)
    # The request's session would take SQLite's write lock (BEGIN IMMEDIATE) and hold it while the
    # body is read, before the view: a slow client would keep every other writer waiting.
    reader = db.read_session()
    try:
        return accounts.authenticate(reader, authorization)
    finally:
        reader.close()


def authenticate() -> None:
    """Authenticate before any input is read (a before_request hook for API blueprints)."""
    principal()


def _finish(response: Response) -> Response:
    """Commit the request's session when the view succeeded; a failed commit answers its error instead."""
    _end_replica()
    seen = _state().pop("partner_seen", None)
    if seen is not None and response.status_code < 400:
        try:
            partner_seen(seen)
        except Exception:
            log.warning("could not keep the partner's address", exc_info=True)
    db_session = _state().pop("session", None)
    if db_session is None:
        return response
    try:
        if response.status_code >= 400:
            db_session.rollback()
            return response
        try:
            db_session.commit()
        except Exception as error:  # noqa: BLE001 - mapped to its JSON answer like a view's error
            # The answer built for success must not go out: nothing of it was stored.
            _rollback(db_session)
            return errors.answer(error)
        return response
    finally:
        db_session.close()


def _rollback(db_session: Session) -> None:
    try:
        db_session.rollback()
    except Exception:  # the connection may be gone: closing the session discards it
        log.warning("could not roll back the request's session", exc_info=True)


def _discard(_exc: BaseException | None) -> None:
    """Roll back a session no answer finished (the request ended by an exception Flask did not handle)."""
    _end_replica()
    db_session = _state().pop("session", None)
    if db_session is not None:
        try:
            _rollback(db_session)
        finally:
            db_session.close()


def register(app: Flask) -> None:
    """Commit each request's session once when it succeeded; roll back otherwise."""
    app.after_request(_finish)
    app.teardown_request(_discard)
