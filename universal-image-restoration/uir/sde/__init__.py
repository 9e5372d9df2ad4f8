"""uir.sde."""
