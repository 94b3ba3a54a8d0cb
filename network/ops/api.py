"""HTTP for operators: /healthz (the process serves), /readyz (it can do its work), /metrics (Prometheus).

/healthz and /readyz need no key and say nothing secret. /metrics is served only when METRICS_TOKEN
is set, to `Authorization: Bearer <METRICS_TOKEN>` (401 without it); unset, it is 404, so it is
never open by default on the public bind.
"""

from __future__ import annotations

import copy
import hmac
from typing import Any

import flask
from flask import Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from network import metrics
from network.errors import NotFound, Unauthorized
from network.ops import collect, health

ops = flask.Blueprint("ops", __name__)


@ops.get("/healthz")
def healthz() -> Any:
    """Answer that the process serves (liveness): always 200."""
    return jsonify({"status": "ok"})


@ops.get("/readyz")
def readyz() -> Any:
    """Answer whether the process can do its work (readiness): 200, or 503 naming the failing checks."""
    extensions = current_app.extensions
    found = health.checks(extensions["network.db"], extensions["network.settings"])
    failing = health.failing(found)
    body = {"status": "unavailable" if failing else "ready", "checks": found, "failing": failing}
    return jsonify(body), 503 if failing else 200


@ops.get("/metrics")
def exposition() -> Response:
    """Answer Prometheus: the counters of every worker and the gauges read from the database."""
    extensions = current_app.extensions
    settings = extensions["network.settings"]
    if not settings.metrics_token:
        raise NotFound("not found")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {settings.metrics_token}".encode()):
        raise Unauthorized("send Authorization: Bearer <METRICS_TOKEN>")
    return Response(collect.exposition(extensions["network.db"], settings), content_type=CONTENT_TYPE_LATEST)


# ---- the OpenAPI description ---------------------------------------------------------------------

_STATUS = {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}, "required": ["status"]}
_READY = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "unavailable"]},
        "checks": {
            "type": "object",
            "description": "Each check's word: ok, not_required (the scheduler, unless READY_SCHEDULER_MINUTES), or why not",
            "properties": {name: {"type": "string"} for name in ("database", "migrations", "scheduler")},
        },
        "failing": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["status", "checks", "failing"],
}
_READY_CONTENT = {"application/json": {"schema": _READY}}

_OPERATIONS: dict[str, dict[str, Any]] = {
    "/readyz": {
        "summary": "For load balancers and orchestrators: the database answers, its schema is at head,"
        " the scheduler ran recently (when required)",
        "responses": {
            "200": {"description": "Ready", "content": _READY_CONTENT},
            "503": {"description": "Not ready: `failing` names the checks", "content": _READY_CONTENT},
        },
    },
    "/metrics": {
        "summary": "Prometheus metrics (text exposition); needs Authorization: Bearer <METRICS_TOKEN>",
        "parameters": [{"in": "header", "name": "Authorization", "required": False, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
            "401": {"description": "No METRICS_TOKEN, or another one"},
            "404": {"description": "METRICS_TOKEN is not set: /metrics is not served"},
        },
    },
}


def document(app: flask.Flask, api: Any) -> None:
    """Describe /readyz and /metrics in the OpenAPI document (/healthz is network/openapi.py's)."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules() if rule.rule in _OPERATIONS}
    for path, operation in _OPERATIONS.items():
        rule = copy.copy(rules[path])
        rule.defaults = rule.defaults or {}  # flask-smorest's path helper reads it; Flask's own rules have None
        api.spec.path(rule=rule, operations={"get": {"tags": ["Operations"], "security": [], **operation}})


def register(app: flask.Flask, api: Any) -> None:
    """Add the operators' routes, and count the connections of this process's pools."""
    app.register_blueprint(ops)
    metrics.watch_pools()
    document(app, api)
