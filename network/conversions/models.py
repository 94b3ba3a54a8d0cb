"""conversions models."""
