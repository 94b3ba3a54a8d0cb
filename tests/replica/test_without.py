"""Without DATABASE_REPLICA_URL nothing changes: the views that may read a replica read the request's session."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from network import config, web
from network.db import Database


def test_the_setting_is_optional_and_must_be_a_postgresql_standby_of_postgresql() -> None:
    assert config.from_env({"SECRET_KEY": "k"}).database_replica_url is None
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/network"
    standby = "postgresql+psycopg://postgres@127.0.0.1:5433/network"
    assert (
        config.from_env({"SECRET_KEY": "k", "DATABASE_URL": pg, "DATABASE_REPLICA_URL": standby}).database_replica_url
        == standby
    )
    with pytest.raises(ValueError, match="DATABASE_REPLICA_URL"):
        config.from_env({"SECRET_KEY": "k", "DATABASE_URL": pg, "DATABASE_REPLICA_URL": "sqlite:///r.db"})
    with pytest.raises(ValueError, match="DATABASE_REPLICA_URL"):
        config.from_env({"SECRET_KEY": "k", "DATABASE_URL": "sqlite:///n.db", "DATABASE_REPLICA_URL": standby})


def test_without_a_replica_the_replica_session_is_the_primary(database_url: str) -> None:
    database = Database(database_url)
    try:
        assert not database.has_replica
        with database.replica_reading() as session:
            assert session.get_bind().url == database.engine.url
    finally:
        database.dispose()


def test_without_a_replica_a_view_reads_the_requests_own_session(app: Flask) -> None:
    with app.test_request_context("/api/v1/reports"):
        assert web.replica_session() is web.session()


def test_without_a_replica_reports_and_lists_answer_as_before(client: Any, session: Any) -> None:
    from tests.factories import Api, make_key

    admin = Api(client, make_key(session, role="admin"))
    for path in ("/api/v1/reports", "/api/v1/conversions", "/api/v1/postback-log", "/api/v1/links"):
        assert admin.get(path).status_code == 200, path
