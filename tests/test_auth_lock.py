"""On SQLite, authenticating an API request takes no write lock.

A request's own session begins with BEGIN IMMEDIATE (network/db.py), which takes SQLite's one write
lock. The API key is looked up before the request's body is read (a before_request hook): in the
request's session, the lock would be held while a slow client sends its body, and every other
writer of every process would wait for it (then fail, after the busy timeout).
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from network import web
from network.auth import Role
from tests.factories import make_key


def test_authenticating_on_sqlite_leaves_the_write_lock_free(committed_app, committed_db, dialect):
    if dialect != "sqlite":
        pytest.skip("PostgreSQL has no database-wide write lock")
    with committed_db.session_scope() as session:
        key = make_key(session, role="admin")
    other = sqlite3.connect(make_url(committed_db.url).database, timeout=0, isolation_level=None)
    try:
        with committed_app.test_request_context("/api/v1/offers", headers={"Authorization": f"Bearer {key}"}):
            web.authenticate()
            assert web.principal().role == Role.ADMIN
            other.execute("BEGIN IMMEDIATE")  # "database is locked" at once if the request held it
            other.execute("ROLLBACK")
            # The request's own session still takes the write lock, once the view first uses it.
            web.session().execute(select(1))
            with pytest.raises(sqlite3.OperationalError, match="database is locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()


def test_an_unknown_key_is_refused_as_before(committed_app, committed_db):
    with committed_app.test_client() as client:
        answer = client.get("/api/v1/offers", headers={"Authorization": "Bearer not-a-key"})
    assert answer.status_code == 401
    assert "unknown or revoked API key" in answer.get_data(as_text=True)
