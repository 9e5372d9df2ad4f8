"""uir.options."""
