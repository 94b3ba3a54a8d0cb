"""A local Stripe-compatible HTTP server for tests (see README.md)."""

from .openapi import Problem, StripeSpec, decode_form, default_spec_path, load_spec
from .server import (
    API_VERSION,
    FAULTS,
    IDEMPOTENCY_WINDOW_SECONDS,
    FakeStripe,
    Fault,
    RecordedRequest,
    Violation,
)

__all__ = [
    "API_VERSION",
    "FAULTS",
    "IDEMPOTENCY_WINDOW_SECONDS",
    "FakeStripe",
    "Fault",
    "Problem",
    "RecordedRequest",
    "StripeSpec",
    "Violation",
    "decode_form",
    "default_spec_path",
    "load_spec",
]
