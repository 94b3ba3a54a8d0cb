"""The OpenAPI description of the plain-Flask postback and pixel endpoints (they are not API views)."""

from __future__ import annotations

from typing import Any


def _param(name: str, description: str) -> dict[str, Any]:
    return {"in": "query", "name": name, "schema": {"type": "string"}, "required": False, "description": description}


_POSTBACK_PARAMS = [
    _param("click_id", "The click id (required, except with status); alias: transaction_id"),
    _param("event", "Event key; default: the offer's first event"),
    _param("amount", 'Sale amount in major units ("80.00"); required for revshare and hybrid events'),
    _param("currency", "ISO 4217 code; default: the offer's (another one is rejected currency_mismatch)"),
    _param("txn_id", "The brand's order id: the dedupe key per offer and event"),
    _param("status", "reversed or rejected: undo the conversion named by txn_id"),
    _param("offer_id", "The offer the conversion is for (optional; lets a signature name its brand)"),
    _param("token", "The brand's postback token; or send X-Signature: t=<unix>,v1=<hex HMAC-SHA256 of t.raw>"),
]
_ANSWER = {
    "type": "object",
    "properties": {
        "conversion_id": {"type": "integer", "nullable": True},
        "status": {"type": "string", "nullable": True},
        "reason": {"type": "string", "nullable": True},
        "duplicate": {"type": "boolean"},
    },
}


def document(app: Any, api: Any) -> None:
    """Describe the plain-Flask postback and pixel endpoints in the OpenAPI document."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules() if rule.rule in ("/postback", "/pixel")}
    answers = {
        "200": {"description": "Judged (also when rejected: the reason says why)",
                "content": {"application/json": {"schema": _ANSWER}}},
        "400": {"description": "Malformed input; the message names the field"},
        "403": {"description": "Missing or wrong token or signature"},
        "409": {"description": "A known txn_id with another amount; the original is unchanged"},
    }  # fmt: skip
    operation = {"tags": ["Postbacks"], "security": [], "parameters": _POSTBACK_PARAMS, "responses": answers}
    api.spec.path(
        rule=rules["/postback"],
        operations={
            "get": {**operation, "summary": "Report a conversion (server to server)"},
            "post": {**operation, "summary": "Report a conversion: the same parameters as a form or JSON body"},
        },
    )
    api.spec.path(
        rule=rules["/pixel"],
        operations={
            "get": {
                "tags": ["Postbacks"],
                "security": [],
                "summary": "Report a conversion from the browser's click cookie (held for the brand's review);"
                " always a 1x1 GIF",
                "parameters": [
                    {**p, "required": True, "description": "The offer the page converts for (required)"}
                    if p["name"] == "offer_id"
                    else p
                    for p in _POSTBACK_PARAMS
                    if p["name"] in ("offer_id", "event", "amount", "txn_id")
                ],
                "responses": {"200": {"description": "A 1x1 GIF", "content": {"image/gif": {}}}},
            }
        },
    )
