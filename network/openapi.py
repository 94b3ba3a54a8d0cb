"""The OpenAPI document says everything the app answers: every route, each status it can answer, its content type.

flask-smorest documents the API views (their parameters, bodies and success answers). This module
completes the document in one place instead of a decorator on every view: an apispec plugin gives
each operation the error answers it can give, in the one error shape (`errors.ERROR_SCHEMA_DOC`),
and drops those it never gives (flask-smorest's 422 and `default`: bad input is a 400 here); the
plain-Flask routes (the click path, postbacks, health, Stripe) are described from the table below.
"""

from __future__ import annotations

import copy
from typing import Any

from apispec import BasePlugin

_METHODS = ("get", "post", "put", "patch", "delete")
_BODY_METHODS = ("post", "put", "patch")

#: What each error status means, the same for every operation that can answer it.
_MEANINGS = {
    400: "Bad input: the message and `errors` name the field",
    401: "No API key, or one unknown or revoked",
    403: "The key's role may not do this",
    404: "No such object (or one of another tenant)",
    409: "The object's state does not allow this, or it conflicts with a concurrent change",
    413: "The body is larger than the server reads",
    503: "The database is unavailable: retry later",
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": _MEANINGS[status],
        "content": {"application/json": {"schema": "Error"}},
    }


def _unavailable() -> dict[str, Any]:
    answer = _error(503)
    answer["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    return answer


def _api_statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """Return the error statuses an authenticated API operation can answer."""
    # Every API operation refuses unknown query parameters (400), needs a key (401) that its role
    # may use (403), and reads the database (503).
    statuses = [400, 401, 403]
    body = method in _BODY_METHODS and "requestBody" in operation
    if "{" in path or body or any(p.get("name", "").endswith("_id") for p in operation.get("parameters", [])):
        statuses.append(404)  # a path id, or an id in the body or the filters, names no visible object
    if method != "get":
        statuses.append(409)
    if body:
        statuses.append(413)
    statuses.append(503)
    return statuses


class ContractPlugin(BasePlugin):
    """Give every operation the error answers it can give, and only those."""

    def operation_helper(self, path: str | None = None, operations: dict | None = None, **kwargs: Any) -> None:
        for method, operation in (operations or {}).items():
            if method in _METHODS and isinstance(operation, dict):
                _set_error_answers(path or "", method, operation)


def _set_error_answers(path: str, method: str, operation: dict[str, Any]) -> None:
    """Replace an operation's error answers by the ones it can give, each in the error shape."""
    # A copy: one module may share one responses dict between its operations.
    responses = operation["responses"] = dict(operation.get("responses", {}))
    given = {str(code): responses.pop(code) for code in list(responses) if _is_error(code)}
    if "security" in operation and not operation["security"]:
        # A public route lists its own answers (PLAIN, or its module), plus those below.
        statuses = [int(code) for code in given] + _PUBLIC_EXTRA.get(path, {}).get(method, [])
        if path == "/postback" and method == "post":
            operation.setdefault("requestBody", _postback_body(operation))
    else:
        statuses = _api_statuses(path, method, operation)
    for status in sorted(set(statuses)):
        responses[str(status)] = _answer(status, given.get(str(status)))


def _answer(status: int, given: Any) -> dict[str, Any]:
    """Return the error answer for `status`: the route's own if it says its content, else the error shape."""
    if not isinstance(given, dict) or "$ref" in given:
        given = {}  # flask-smorest's generic answers ("BAD_REQUEST"): replaced by ours
    if "content" in given:
        return given  # e.g. the click path's text/plain 404, /readyz's own 503
    answer = _unavailable() if status == 503 else _error(status)
    return {**answer, **given}  # the route's own description, if it has one


#: Statuses a public route documented in its own module answers beyond those it lists there.
_PUBLIC_EXTRA: dict[str, dict[str, list[int]]] = {"/postback": {"get": [503], "post": [413, 503]}}


def _is_error(code: Any) -> bool:
    text = str(code)
    return text == "default" or (text.isdigit() and int(text) >= 400)


# ---- the plain-Flask routes ------------------------------------------------------------------------

_GIF = {"image/gif": {"schema": {"type": "string", "format": "binary"}}}
_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_NOT_FOUND_TEXT = {"description": "No such link, or one no longer live", "content": _TEXT}


def _query(name: str, description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "required": False, "description": description, "schema": {"type": "string"}}


_CLICK_PARAMS = [
    *(_query(f"sub{n}", f"Partner sub id {n}, stored with the click") for n in range(1, 6)),
    _query("utm_source", "Passed through to the destination (any utm_*)"),
    _query("utm_campaign", "Passed through to the destination (any utm_*)"),
]

_HEALTH = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ok"]}},
    "required": ["status"],
}

_WEBHOOK_ANSWER = {
    "type": "object",
    "properties": {"received": {"type": "boolean"}, "outcome": {"type": "string"}},
    "required": ["received", "outcome"],
}

#: The routes flask-smorest does not see: rule -> operations (path parameters come from the rule's
#: converters). `security: []` marks them public.
PLAIN: dict[str, dict[str, dict[str, Any]]] = {
    "/c/<code>": {
        "get": {
            "tags": ["Tracking"],
            "summary": "Follow a tracking link: record the click and redirect to the offer (or its fallback)",
            "parameters": _CLICK_PARAMS,
            "responses": {
                "302": {
                    "description": "To the offer's destination; sets the click cookie when a click is recorded",
                    "headers": {
                        "Location": {"required": True, "schema": {"type": "string"}},
                        "Set-Cookie": {"schema": {"type": "string"}},
                    },
                },
                "404": _NOT_FOUND_TEXT,
            },
        }
    },
    "/i/<code>": {
        "get": {
            "tags": ["Tracking"],
            "summary": "Count an impression of a tracking link; a 1x1 GIF",
            "responses": {"200": {"description": "A 1x1 GIF", "content": _GIF}, "404": _NOT_FOUND_TEXT},
        }
    },
    "/healthz": {
        "get": {
            "tags": ["Operations"],
            "summary": "Liveness: the process serves (readiness, the database included, is /readyz)",
            "responses": {"200": {"description": "Up", "content": {"application/json": {"schema": _HEALTH}}}},
        }
    },
    "/webhooks/stripe": {
        "post": {
            "tags": ["Payouts"],
            "summary": "Stripe's events, verified by their Stripe-Signature and applied once",
            "parameters": [
                {"in": "header", "name": "Stripe-Signature", "required": False, "schema": {"type": "string"}}
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
            "responses": {
                "200": {
                    "description": "Applied (or a replay, ignored)",
                    "content": {"application/json": {"schema": _WEBHOOK_ANSWER}},
                },
                "400": {"description": "Not a genuine Stripe event (code invalid_webhook)"},
                "413": {},
                "503": {},
            },
        }
    },
    "/stripe/onboarding/<any(return, refresh):step>": {
        "get": {
            "tags": ["Payouts"],
            "summary": "Where Stripe sends a partner back after onboarding (return) or when its link expired (refresh)",
            "responses": {
                "200": {"description": "A sentence for the partner", "content": _TEXT},
                "404": {"description": "Another step"},
            },
        }
    },
}


def _postback_body(operation: dict[str, Any]) -> dict[str, Any]:
    """The POST /postback body: the query's parameters, as a form or a JSON object."""
    properties = {
        p["name"]: {"type": "string", "description": p.get("description", "")} for p in operation.get("parameters", [])
    }
    schema = {"type": "object", "properties": properties}
    return {
        "required": False,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}, "application/json": {"schema": schema}},
    }


def document(app: Any, api: Any) -> None:
    """Add the plain-Flask routes of `app` (Flask) to `api`'s (flask-smorest) document; the plugin completes them."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    for rule_text, operations in PLAIN.items():
        rule = copy.copy(rules[rule_text])
        rule.defaults = rule.defaults or {}  # flask-smorest's path helper reads it; Flask's own rules have None
        public = {method: {"security": [], **operation} for method, operation in operations.items()}
        api.spec.path(rule=rule, operations=public)


def spec_kwargs() -> dict[str, Any]:
    """Return the Api's spec_kwargs: the bearer key, and the plugin that completes every operation."""
    return {
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "extra_plugins": [ContractPlugin()],
    }
