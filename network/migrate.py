"""Alembic, driven from code: the schema comes only from migrations."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from network.config import ROOT


def alembic_config(database_url: str) -> Config:
    """Return an alembic Config for the project's migrations against `database_url`."""
    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring a database to `revision` (default: the newest schema)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Take a database back to `revision`."""
    command.downgrade(alembic_config(database_url), revision)
