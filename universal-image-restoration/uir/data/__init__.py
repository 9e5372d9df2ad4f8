"""uir.data."""
