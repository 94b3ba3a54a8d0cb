"""deliveries models."""
