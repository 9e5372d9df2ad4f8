"""uir.models."""
