"""Request plumbing for api modules: the blueprint class, the request's session, principal and settings."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import flask_smorest
from flask import Flask, Response, current_app, request
from webargs import core
from webargs.flaskparser import FlaskParser, abort, is_json_request

from network.accounts import service as accounts
from network.auth import Principal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from network.config import Settings
    from network.db import Database


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
    """The flask-smorest Blueprint every API module uses: strict input, 400 on bad input."""

    ARGUMENTS_PARSER = StrictParser()


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


def principal() -> Principal:
    """Return who the request's API key acts as (401 when missing or unknown)."""
    state = _state()
    if "principal" not in state:
        state["principal"] = _authenticate(request.headers.get("Authorization"))
    return state["principal"]


def _authenticate(authorization: str | None) -> Principal:
    db = database()
    if db.dialect != "sqlite":
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
    db_session = _state().pop("session", None)
    if db_session is not None:
        try:
            if response.status_code < 400:
                db_session.commit()
            else:
                db_session.rollback()
        finally:
            db_session.close()
    return response


def _discard(_exc: BaseException | None) -> None:
    db_session = _state().pop("session", None)
    if db_session is not None:
        db_session.rollback()
        db_session.close()


def register(app: Flask) -> None:
    """Commit each request's session once when it succeeded; roll back otherwise."""
    app.after_request(_finish)
    app.teardown_request(_discard)
