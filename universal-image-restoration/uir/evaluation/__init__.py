"""uir.evaluation."""
