"""network: an affiliate and partner commission network."""
