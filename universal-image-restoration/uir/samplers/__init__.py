"""uir.samplers."""
