"""Domain errors and the one place they become JSON responses.

Every error answer is `{"code": ..., "message": ..., "errors": {field: [messages]}, "request_id": ...}`. Bad input
is 400 everywhere, whether a schema or a service rule refused it (flask-smorest's 422 for schema
errors is answered as 400 too), and the message names the field. Every 5xx is answered by
`server_error`: a 500 is always `internal_error`, whatever raised it, and never says why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask, Response
    from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

#: Where a request's id is kept in its WSGI environ (set by network/ops/logs.py, answered with each error).
REQUEST_ID = "network.request_id"


class DomainError(Exception):
    """An error a client can act on: an HTTP status, a machine code, a message, field errors."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.fields = fields or {}


class ValidationError(DomainError):
    """Input that is malformed or breaks a rule; names the field."""

    status = 400
    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code, fields={field: [message]} if field else None)
        self.field = field


class Unauthorized(DomainError):
    """No API key, or one that is unknown or revoked."""

    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    """The key's role may not do this."""

    status = 403
    code = "forbidden"


class NotFound(DomainError):
    """No such object, or one of another tenant (existence is not leaked)."""

    status = 404
    code = "not_found"


class Conflict(DomainError):
    """The object's state does not allow this (a status transition, a duplicate)."""

    status = 409
    code = "conflict"


def error_body(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON body every error response carries."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["errors"] = fields
    return body


def _merge(into: dict[str, list[str]], more: dict[str, list[str]]) -> dict[str, list[str]]:
    """Add `more`'s messages to `into`'s, field by field; return `into`."""
    for name, texts in more.items():
        into.setdefault(name, []).extend(texts)
    return into


def _path(prefix: str, key: Any) -> str:
    """Return the field path of `key` under `prefix`: `[0]` for an index, the prefix for `_schema`."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return f"{prefix}[{key}]"
    if key == "_schema":
        return prefix or "_schema"
    return f"{prefix}.{key}" if prefix else str(key)


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Return marshmallow's nested error messages keyed by field path (`events[0].payout`)."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            _merge(flat, flatten_messages(value, _path(prefix, key)))
        return flat
    if isinstance(messages, list | tuple) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": [str(m) for m in messages]}
    if isinstance(messages, list | tuple):
        for item in messages:
            _merge(flat, flatten_messages(item, prefix))
        return flat
    return {prefix or "_schema": [str(messages)]}


def schema_error_body(messages: Mapping[str, Any]) -> dict[str, Any]:
    """Return the 400 body for webargs/marshmallow errors ({location: {field: [msg]}}), naming the fields."""
    fields: dict[str, list[str]] = {}
    for location_errors in messages.values():
        _merge(fields, flatten_messages(location_errors))
    if list(fields) == ["_schema"]:
        text = fields["_schema"][0]
        message = "request body is not valid JSON" if text == "Invalid JSON body." else f"invalid input: {text}"
        return error_body(400, "validation_error", message, fields)
    first = next(name for name in fields if name != "_schema")
    message = f"invalid {first}: {fields[first][0]}"
    if len(fields) > 1:
        message += f" (and {len(fields) - 1} more: see errors)"
    return error_body(400, "validation_error", message, fields)


def _is_unique_violation(error: Exception) -> bool:
    orig = getattr(error, "orig", None)
    if getattr(orig, "sqlstate", None) == "23505":  # PostgreSQL unique_violation
        return True
    return "UNIQUE constraint failed" in str(orig)


def _respond(status: int, body: dict[str, Any]) -> Response:
    from flask import has_request_context, jsonify, request

    if has_request_context() and REQUEST_ID in request.environ:
        body["request_id"] = request.environ[REQUEST_ID]  # what the log lines of this request carry
    response = jsonify(body)
    response.status_code = status
    return response


#: How the error answer looks in the OpenAPI document (flask-smorest's default says otherwise).
ERROR_SCHEMA_DOC = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "Machine-readable error code, e.g. validation_error"},
        "message": {"type": "string", "description": "What went wrong, naming the field"},
        "errors": {
            "type": "object",
            "description": "Field path -> messages",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
        "request_id": {"type": "string", "description": "The request's id (its X-Request-ID), as in the logs"},
    },
    "required": ["code", "message"],
}


def _document(app: Flask) -> None:
    apis = app.extensions.get("flask-smorest", {}).get("apis", {})
    for entry in apis.values():
        spec = getattr(entry.get("ext_obj"), "spec", None)
        if spec is not None and "Error" in spec.components.schemas:
            spec.components.schemas["Error"] = ERROR_SCHEMA_DOC


def server_error(status: int = 500) -> Response:
    """Return the answer of every 5xx: the status and its code (500 is `internal_error`), never the cause."""
    from werkzeug.http import HTTP_STATUS_CODES

    if status == 500:
        return _respond(500, error_body(500, "internal_error", "internal error"))
    name = HTTP_STATUS_CODES.get(status, "server error")
    return _respond(status, error_body(status, name.lower().replace(" ", "_"), name.lower()))


def answer(error: Exception) -> Response:
    """Return the JSON answer the app's handlers give `error`, for one raised outside a view (a commit).

    Call it inside the `except` block that caught `error`.
    """
    from flask import current_app

    return current_app.make_response(current_app.handle_user_exception(error))


def _http_answer(error: HTTPException) -> Response:
    status = error.code or 500
    if status >= 500:
        response = server_error(status)
    else:
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages and status in (400, 422):
            return _respond(400, schema_error_body(messages))
        code = (error.name or "error").lower().replace(" ", "_").replace("'", "")
        response = _respond(status, error_body(status, code, error.description or error.name))
    # The exception's own headers (Allow of a 405, Retry-After of a 503), never its HTML type.
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def register_database_unavailable(app: Flask) -> None:
    """Answer a database outage 503 with Retry-After (clients retry), logged once per interval (network.outage)."""
    from network import outage

    def _unavailable(error: Exception) -> Response:
        outage.REQUESTS.note(error)
        response = _respond(503, error_body(503, "database_unavailable", "the database is unavailable; retry later"))
        response.headers["Retry-After"] = str(outage.RETRY_AFTER)
        return response

    for kind in outage.UNAVAILABLE:
        app.register_error_handler(kind, _unavailable)


def register(app: Flask) -> None:
    """Map domain errors, HTTP errors and anything unexpected to JSON; never leak a traceback."""
    # Imported here so services can import the error classes without importing flask.
    from sqlalchemy.exc import DataError, IntegrityError
    from werkzeug.exceptions import HTTPException

    _document(app)
    register_database_unavailable(app)

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        return _respond(error.status, error_body(error.status, error.code, error.message, error.fields))

    # Flask's own 500 (an exception outside a view) comes here too, already logged by Flask.
    app.register_error_handler(HTTPException, _http_answer)

    @app.errorhandler(IntegrityError)
    def _integrity(error: IntegrityError) -> Response:
        if _is_unique_violation(error):
            # Two requests raced to create the same thing; the loser is told, not given a 500.
            return _respond(409, error_body(409, "conflict", "this conflicts with a concurrent change; retry"))
        # The constraint's name, never the statement's parameters (they may hold tokens).
        diag = getattr(error.orig, "diag", None)
        log.error("integrity error: %s", getattr(diag, "constraint_name", None) or str(error.orig)[:200])
        return server_error()

    @app.errorhandler(DataError)
    @app.errorhandler(OverflowError)
    def _out_of_range(error: Exception) -> Response:
        # A number too large for its column (an id past 2**31-1) or a value the database cannot
        # hold: the client's input, so 400; the statement and its parameters are never shown.
        log.info("input the database refused: %s", type(error).__name__)
        return _respond(400, error_body(400, "validation_error", "a value is out of range or not storable"))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return server_error()
