"""Shared fixtures: a migrated database per run (SQLite or PostgreSQL), a rolled-back
transaction per test, the app bound to it, and API clients acting with real keys."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from network import clock, migrate
from network.app import create_app
from network.config import Settings
from network.db import Database, make_engine
from network.schema import metadata

#: Set by `make test` for the PostgreSQL pass, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL")


def _create_pg_database(admin_url: str) -> str:
    name = f"network_test_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of this test run's own, migrated to head by alembic (never create_all)."""
    if PG_ADMIN_URL:
        url = _create_pg_database(PG_ADMIN_URL)
        try:
            migrate.upgrade(url)
            yield url
        finally:
            _drop_pg_database(PG_ADMIN_URL, url)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'network.db'}"
        migrate.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def dialect(engine) -> str:  # type: ignore[no-untyped-def]
    return engine.dialect.name


class BoundDatabase(Database):
    """A Database whose sessions join one outer transaction, rolled back after the test."""

    def __init__(self, url: str, engine: Any, connection: Any) -> None:
        self.url = url
        self.engine = engine
        self.connection = connection
        self.sessionmaker = sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )

    def writer_session(self) -> Session:
        """Return a session in the test's transaction, as every other."""
        return self.session()

    def read_session(self) -> Session:
        """Return a session in the test's transaction, as every other."""
        return self.session()

    @contextmanager
    def writers_queue(self) -> Iterator[None]:
        """No line: the test's transaction holds the database."""
        yield


def make_settings(database_url: str, **overrides: Any) -> Settings:
    """Return settings for tests: fixed secret, test base URL, no Stripe."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "secret_key": "test-secret-key",
        "public_base_url": "http://localhost",
        "testing": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def db(engine, database_url: str) -> Iterator[BoundDatabase]:  # type: ignore[no-untyped-def]
    """A database whose every change this test makes is rolled back at its end."""
    connection = engine.connect()
    outer = connection.begin()
    try:
        yield BoundDatabase(database_url, engine, connection)
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def session(db: BoundDatabase) -> Iterator[Session]:
    """A session for builders and assertions, inside the test's transaction."""
    s = db.session()
    yield s
    s.close()


@pytest.fixture
def app(settings: Settings, db: BoundDatabase, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The app (pytest-flask's `client` uses it), bound to the test's transaction."""
    app = create_app(settings, database=db)
    yield app
    _no_failed_batches(app, request)


def _no_failed_batches(app: Any, request: pytest.FixtureRequest) -> None:
    """Postbacks are recorded in batches, and a failed batch is recorded again one by one (the answers
    are the same): a test that did not mean to break a batch must not have broken one unseen."""
    if request.node.get_closest_marker("breaks_batches") is None:
        assert app.extensions["network.conversions.recorder"].failures == 0, "a batch of postbacks failed"


@pytest.fixture
def committed_db(database_url: str) -> Iterator[Database]:
    """A real database whose commits are visible to other connections and processes;
    emptied afterwards. For races, locks and several processes."""
    database = Database(database_url)
    yield database
    _truncate_all(database)
    database.dispose()


def _truncate_all(database: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    with database.engine.begin() as conn:
        if database.dialect == "postgresql":
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def committed_app(settings: Settings, committed_db: Database, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """The app on a committing database (see committed_db)."""
    app = create_app(settings, database=committed_db)
    yield app
    _no_failed_batches(app, request)


@pytest.fixture
def frozen_clock() -> Iterator[Any]:
    """Freeze clock.now_utc(); call the fixture's value with a datetime to move it."""

    def move(at: Any) -> None:
        clock.freeze(at)

    yield move
    clock.freeze(None)


@contextmanager
def no_frozen_clock() -> Iterator[None]:
    clock.freeze(None)
    yield
