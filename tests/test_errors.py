"""One JSON error shape for every failure: a commit refused at the end of a request, Flask's own 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text
from sqlalchemy.orm import Session
from werkzeug.exceptions import InternalServerError, ServiceUnavailable

from network import web
from network.accounts.models import Brand

# ---- a commit that fails at the end of the request ------------------------------------------------


def _deferred_foreign_key(s: Session) -> None:
    # Checked only at COMMIT, on both databases: the view's statements all succeed.
    s.execute(text("CREATE TEMP TABLE IF NOT EXISTS t_parent (id INTEGER PRIMARY KEY)"))
    s.execute(
        text(
            "CREATE TEMP TABLE IF NOT EXISTS t_child (id INTEGER PRIMARY KEY,"
            " parent_id INTEGER REFERENCES t_parent (id) DEFERRABLE INITIALLY DEFERRED)"
        )
    )
    s.execute(text("INSERT INTO t_child (id, parent_id) VALUES (1, 42)"))


def _duplicate_at_commit(s: Session) -> None:
    # A concurrent request stored the same token first: the clash surfaces inside commit().
    def clash(session: Session) -> None:
        session.add(Brand(name="Other", currency="USD", postback_token="same-token"))
        session.flush()

    event.listen(s, "before_commit", clash, once=True)


def _refused_value_at_commit(s: Session) -> None:
    # A value the database cannot hold, sent inside commit(): PostgreSQL answers "integer out of
    # range" (a DataError); SQLite's driver cannot even bind it (OverflowError).
    def refused(session: Session) -> None:
        session.execute(text("SELECT CAST(:n AS INTEGER)"), {"n": 2**64})

    event.listen(s, "before_commit", refused, once=True)


@pytest.mark.parametrize(
    ("fail", "status", "code"),
    [
        (_deferred_foreign_key, 500, "internal_error"),
        (_duplicate_at_commit, 409, "conflict"),
        (_refused_value_at_commit, 400, "validation_error"),
    ],
    ids=["constraint", "unique-race", "refused-value"],
)
def test_a_commit_that_fails_answers_the_json_error_not_the_success(
    committed_app: Flask, committed_db: Any, fail: Callable[[Session], None], status: int, code: str
) -> None:
    @committed_app.post("/commit-fails")
    def commit_fails() -> Any:
        s = web.session()
        s.add(Brand(name="Mine", currency="USD", postback_token="same-token"))
        s.flush()
        fail(s)
        return {"created": True}, 201

    client = committed_app.test_client()
    r = client.post("/commit-fails")
    assert (r.status_code, r.json["code"]) == (status, code), r.data
    assert set(r.json) <= {"code", "message", "errors", "request_id"} and "created" not in r.json
    with committed_db.session() as s:
        assert s.execute(text("SELECT count(*) FROM brands")).scalar() == 0  # nothing of it stayed
    assert client.get("/healthz").status_code == 200  # the connection went back to the pool usable


def test_a_commit_that_fails_is_answered_also_when_flask_propagates_exceptions(committed_app: Flask) -> None:
    # TESTING propagates unhandled exceptions: the commit's error must be handled, not escape.
    assert committed_app.config["TESTING"] is True

    @committed_app.post("/commit-fails")
    def commit_fails() -> Any:
        _deferred_foreign_key(web.session())
        return {}

    r = committed_app.test_client().post("/commit-fails")
    assert r.status_code == 500 and r.json == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": r.headers["X-Request-ID"],
    }


# ---- every 5xx one shape ----------------------------------------------------------------------------


def test_flasks_own_500_is_internal_error(app: Flask, client: Any) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: Flask makes the 500 itself

    @app.get("/ok")
    def ok() -> Any:
        return {}

    @app.after_request
    def broken(response: Any) -> Any:
        raise RuntimeError("after the view, outside any error handler")

    r = client.get("/ok")
    assert r.status_code == 500 and r.json == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": r.headers["X-Request-ID"],
    }


def test_a_raised_500_and_other_5xx_answer_one_shape(app: Flask, client: Any) -> None:
    @app.get("/raised-500")
    def raised_500() -> Any:
        raise InternalServerError("a detail that must not be shown")

    @app.get("/unavailable")
    def unavailable() -> Any:
        raise ServiceUnavailable("the database is away", retry_after=5)

    r = client.get("/raised-500")
    assert r.status_code == 500 and r.json == {
        "code": "internal_error",
        "message": "internal error",
        "request_id": r.headers["X-Request-ID"],
    }
    r = client.get("/unavailable")
    assert r.status_code == 503 and r.json == {
        "code": "service_unavailable",
        "message": "service unavailable",
        "request_id": r.headers["X-Request-ID"],
    }
    assert r.headers["Retry-After"] == "5" and r.mimetype == "application/json"


def test_a_405_keeps_its_allow_header(client: Any) -> None:
    r = client.delete("/healthz")
    assert r.status_code == 405 and r.json["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].split(", ")) >= {"GET", "HEAD"}
