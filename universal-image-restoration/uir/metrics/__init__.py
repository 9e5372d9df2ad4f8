"""uir.metrics."""
