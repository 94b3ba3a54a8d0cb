"""Flask-Limiter is hooked on the web app's pages only: clicks, postbacks and the API do not run it."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request


def _hooks(app: Flask, path: str) -> list[Any]:
    """Every before_request, after_request and teardown function Flask runs for a request to `path`."""
    with app.test_request_context(path):
        scopes = (None, *request.blueprints)
    tables = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    return [func for table in tables for scope in scopes for func in table.get(scope, [])]


def _limiters(app: Flask, path: str) -> list[Any]:
    """The hooks of `path` that belong to the sign-in limiter (bound methods, or partials given it)."""
    limiter = app.extensions["network.signin_limiter"]
    return [
        f for f in _hooks(app, path) if getattr(f, "__self__", None) is limiter or limiter in getattr(f, "args", ())
    ]


def test_the_click_path_runs_no_limiter_before_request(app):
    with app.test_request_context("/c/some-code"):
        assert request.endpoint == "tracking.click"
        scopes = (None, *request.blueprints)
    before = [func for scope in scopes for func in app.before_request_funcs.get(scope, [])]
    assert app.extensions["network.signin_limiter"]._check_request_limit not in before


@pytest.mark.parametrize("path", ["/c/some-code", "/postback", "/api/v1/offers", "/api/v1/conversions"])
def test_clicks_postbacks_and_the_api_gain_no_limiter_hook(app, path):
    assert _limiters(app, path) == []


def test_the_web_pages_run_the_limiters_hooks(app):
    assert len(_limiters(app, "/account/sign-in")) == 3
    assert len(_limiters(app, "/partner/")) == 3
