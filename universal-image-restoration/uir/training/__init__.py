"""uir.training."""
