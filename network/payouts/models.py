"""payouts models."""
