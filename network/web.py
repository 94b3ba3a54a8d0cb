"""Request plumbing for api modules: the blueprint class, the request's session, principal and settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask_smorest
from flask import Flask, Response, current_app, request
from webargs.flaskparser import FlaskParser

from network.accounts import service as accounts
from network.auth import Principal

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from network.config import Settings
    from network.db import Database


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
