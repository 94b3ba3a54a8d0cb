"""Domain errors and the one place they become JSON responses."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask, Response

log = logging.getLogger(__name__)


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
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


def error_body(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON body every error response carries."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["errors"] = fields
    return body


def _respond(status: int, body: dict[str, Any]) -> Response:
    from flask import jsonify

    response = jsonify(body)
    response.status_code = status
    return response


def register(app: Flask) -> None:
    """Map domain errors, HTTP errors and anything unexpected to JSON; never leak a traceback."""
    # Imported here so services can import the error classes without importing flask.
    from werkzeug.exceptions import HTTPException

    @app.errorhandler(DomainError)
    def _domain(error: DomainError) -> Response:
        return _respond(error.status, error_body(error.status, error.code, error.message, error.fields))

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        messages = data.get("messages") if isinstance(data, dict) else None
        if messages:
            # webargs/flask-smorest schema errors: {"json": {"field": ["msg"]}} -> name the fields.
            fields: dict[str, Any] = {}
            for location_errors in messages.values():
                if isinstance(location_errors, dict):
                    fields.update(location_errors)
            names = ", ".join(sorted(fields)) or "input"
            return _respond(status, error_body(status, "validation_error", f"invalid {names}", fields))
        code = (error.name or "error").lower().replace(" ", "_")
        return _respond(status, error_body(status, code, error.description or error.name))

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return _respond(500, error_body(500, "internal_error", "internal error"))
