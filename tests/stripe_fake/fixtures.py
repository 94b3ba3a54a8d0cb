"""Pytest fixture for FakeStripe; import it into a conftest.py to use it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import FakeStripe


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """Yield a running FakeStripe; fail if any request broke Stripe's API description."""
    with FakeStripe() as fake:
        yield fake
        assert fake.errors == [], "FakeStripe crashed:\n" + "\n".join(fake.errors)
        assert fake.violations == [], "requests Stripe would refuse"
