"""Rollup fixtures: the report fixtures' builders and world."""

from tests.reports.conftest import world  # noqa: F401
