"""Migrations are the only source of the schema: one head, head == models, and up/down/up works.

Each test runs on a fresh database of its own (SQLite file, or a new PostgreSQL database when
TEST_POSTGRES_URL is set), never on the session's shared one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from network import migrate
from network.app import create_app
from network.db import make_engine
from network.schema import metadata
from tests.conftest import PG_ADMIN_URL, _create_pg_database, _drop_pg_database, make_settings


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """An empty database used by this test only."""
    if PG_ADMIN_URL:
        url = _create_pg_database(PG_ADMIN_URL)
        try:
            yield url
        finally:
            _drop_pg_database(PG_ADMIN_URL, url)
    else:
        yield f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}"


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _current(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def test_one_linear_chain_with_a_single_head():
    script = _script()
    assert len(script.get_heads()) == 1, f"several heads: {script.get_heads()}"
    revisions = list(script.walk_revisions())
    assert not [rev for rev in revisions if isinstance(rev.down_revision, tuple | list)], "keep one linear chain"
    # File names sort in chain order.
    names = [Path(rev.path).name for rev in reversed(revisions)]
    assert names == sorted(names)


def test_upgrade_head_matches_the_models(fresh_url: str):
    migrate.upgrade(fresh_url)
    assert _diff(fresh_url) == []
    assert {table.name for table in metadata.sorted_tables} <= _tables(fresh_url)


def test_upgrade_downgrade_upgrade(fresh_url: str):
    migrate.upgrade(fresh_url)
    migrate.downgrade(fresh_url, "base")
    assert _tables(fresh_url) <= {"alembic_version"}
    assert _current(fresh_url) is None
    migrate.upgrade(fresh_url)
    assert _current(fresh_url) == _script().get_current_head()
    assert _diff(fresh_url) == []


def test_each_revision_downgrades_and_upgrades_again(fresh_url: str):
    """The stairway: every step up can be taken back and taken again."""
    for revision in reversed(list(_script().walk_revisions())):
        migrate.upgrade(fresh_url, revision.revision)
        migrate.downgrade(fresh_url, revision.down_revision or "base")
        migrate.upgrade(fresh_url, revision.revision)
        assert _current(fresh_url) == revision.revision
    assert _diff(fresh_url) == []


def test_flask_db_commands_migrate_and_check(fresh_url: str):
    app = create_app(make_settings(fresh_url))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert _current(fresh_url) == _script().get_current_head()
    result = runner.invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
    app.extensions["network.db"].dispose()
