"""Benchmarks: ``braid bench query`` and ``braid bench ingest``."""
