"""Benchmark and training-data loaders with download + checksum cache."""
