"""Fixtures for billing tests: FakeStripe."""

from tests.stripe_fake.fixtures import fake_stripe

__all__ = ["fake_stripe"]
