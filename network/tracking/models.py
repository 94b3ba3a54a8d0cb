"""tracking models."""
