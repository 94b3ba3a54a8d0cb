"""A hot standby of the run's PostgreSQL server, and the app reading its reports from it.

The standby is made once per run, after the run's database exists (a standby copies the whole
cluster). Without TEST_POSTGRES_URL (the SQLite pass) its tests are skipped: the PostgreSQL pass
runs them. When a standby cannot be made (tools, permissions, the primary's pg_hba.conf), they are
skipped with the reason, except in CI (`CI` set), where that fails the run: .ci/run prepares it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest
from flask import Flask

from network.app import create_app
from network.db import Database
from tests.conftest import PG_ADMIN_URL, _truncate_all, make_settings
from tests.replica.standby import NoStandby, Standby


def _cannot(why: object) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"CI must test reads from a replica, but no hot standby could be made: {why}")
    pytest.skip(f"no hot standby here: {why}")


@pytest.fixture(scope="session")
def standby(database_url: str) -> Iterator[Standby]:
    """A hot standby of the primary, holding this run's database (stopped and removed at the end)."""
    if not PG_ADMIN_URL:
        pytest.skip("the PostgreSQL pass tests the replica (TEST_POSTGRES_URL): SQLite has none")
    try:
        made = Standby(PG_ADMIN_URL)
    except NoStandby as why:
        _cannot(why)
    try:
        made.start()
    except NoStandby as why:
        made.destroy()
        _cannot(why)
    yield made
    made.destroy()


@pytest.fixture
def replica_app(standby: Standby, database_url: str) -> Iterator[Flask]:
    """The app as DATABASE_REPLICA_URL makes it (create_app builds its Database), on committing databases.

    Its rows are removed afterwards (on the primary; the standby follows), and the standby replays
    again whatever the test held up.
    """
    settings = make_settings(database_url, database_replica_url=standby.url(database_url))
    app = create_app(settings)
    database: Database = app.extensions["network.db"]
    try:
        yield app
    finally:
        standby.resume()
        _truncate_all(database)
        standby.catch_up()
        database.dispose()


@pytest.fixture
def replica_db(replica_app: Flask) -> Database:
    """The replica app's Database: its primary and its replica."""
    database: Database = replica_app.extensions["network.db"]
    return database


@pytest.fixture
def replica_client(replica_app: Flask) -> Any:
    return replica_app.test_client()
