"""The OpenAPI document describes every route the app serves, each status it can answer and only those
(ISSUE 18: the contract says everything). tests/test_fuzz.py checks the answers against it over HTTP."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis

from network.errors import ERROR_SCHEMA_DOC

#: Routes that serve the document itself (and Flask's static files, of which the app has none): not API.
NOT_API = {"static", "swagger_assets", "api-docs.openapi_json", "api-docs.openapi_swagger_ui"}
#: The web app's pages (network/portal) are HTML for people, signed in by cookie: not the API's contract.
PAGES = "portal."
_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _document(client: Any) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]


def _missing_routes(app: Any, document: dict[str, Any]) -> list[str]:
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_API or rule.endpoint.startswith(PAGES):
            continue
        path = _ARGUMENT.sub(r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if method.lower() not in document["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    return missing


def test_every_route_of_the_app_is_in_the_document(app, client):
    document = _document(client)
    assert _missing_routes(app, document) == []
    # The plain-Flask routes too, with their own answers.
    for path in ("/c/{code}", "/i/{code}", "/postback", "/pixel", "/healthz", "/webhooks/stripe"):
        assert path in document["paths"], path
    assert set(document["paths"]["/postback"]) >= {"get", "post"}
    assert document["paths"]["/stripe/onboarding/{step}"]["parameters"][0]["schema"]["enum"] == ["return", "refresh"]


def test_a_route_missing_from_the_document_is_found(app, client):
    """The check above can fail: a route added without documentation is named."""
    app.add_url_rule("/undocumented/<int:thing_id>", "undocumented", lambda thing_id: "", methods=["GET", "POST"])
    assert _missing_routes(app, _document(client)) == [
        "GET /undocumented/{thing_id}",
        "POST /undocumented/{thing_id}",
    ]


def test_no_operation_documents_422_or_a_catch_all(client):
    """Bad input is a 400 here; `default` would let any status pass for documented."""
    for path, method, operation in _operations(_document(client)):
        assert not {"422", "default"} & set(operation["responses"]), f"{method} {path}"


def test_every_error_answer_is_the_error_shape(client):
    document = _document(client)
    assert document["components"]["schemas"]["Error"] == ERROR_SCHEMA_DOC
    plain_text = {("/c/{code}", "404"), ("/i/{code}", "404"), ("/readyz", "503")}
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if int(status) >= 400 and (path, status) not in plain_text:
                assert answer["content"] == _ERROR, f"{method} {path} {status}"


def test_api_operations_document_the_statuses_they_answer(client):
    for path, method, operation in _operations(_document(client)):
        if not path.startswith("/api/v1/"):
            continue
        statuses = set(operation["responses"])
        label = f"{method} {path}"
        assert {"400", "401", "403", "503"} <= statuses, label  # unknown parameters, keys, roles, database
        if "{" in path or "requestBody" in operation:
            assert "404" in statuses, label  # an id in the path or the body names no visible object
        assert ("409" in statuses) == (method != "get"), label
        assert ("413" in statuses) == ("requestBody" in operation), label


@pytest.mark.parametrize(
    ("path", "method", "statuses", "content"),
    [
        ("/c/{code}", "get", {"302", "404"}, None),
        ("/i/{code}", "get", {"200", "404"}, "image/gif"),
        ("/pixel", "get", {"200"}, "image/gif"),
        ("/healthz", "get", {"200"}, "application/json"),
        ("/readyz", "get", {"200", "503"}, "application/json"),
        ("/metrics", "get", {"200", "401", "404"}, "text/plain"),
        ("/stripe/onboarding/{step}", "get", {"200", "404"}, "text/plain"),
        ("/webhooks/stripe", "post", {"200", "400", "413", "503"}, "application/json"),
        ("/postback", "get", {"200", "400", "403", "409", "503"}, "application/json"),
        ("/postback", "post", {"200", "400", "403", "409", "413", "503"}, "application/json"),
    ],
)
def test_plain_routes_document_their_answers(client, path, method, statuses, content):
    operation = _document(client)["paths"][path][method]
    assert set(operation["responses"]) == statuses
    assert operation["security"] == []  # no API key
    success = min(statuses)
    assert list(operation["responses"][success].get("content", {None: 0})) == [content]


def test_the_click_redirect_documents_its_location(client):
    redirect = _document(client)["paths"]["/c/{code}"]["get"]["responses"]["302"]
    assert redirect["headers"]["Location"]["required"] is True and "content" not in redirect


def test_a_postback_body_is_a_form_or_json_with_the_query_parameters(client):
    operation = _document(client)["paths"]["/postback"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/x-www-form-urlencoded", "application/json"}
    names = {p["name"] for p in operation["parameters"]}
    assert set(content["application/json"]["schema"]["properties"]) == names >= {"click_id", "amount", "token"}


def test_the_document_is_valid_openapi(client):
    schema = schemathesis.openapi.from_dict(_document(client))
    operations = [result.ok() for result in schema.get_all_operations()]  # ok() raises on an invalid one
    assert len(operations) == len(_operations(_document(client)))
