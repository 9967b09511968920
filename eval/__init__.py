"""Offline evaluation, tuning, benchmarks and reranker training (import as ``eval.x``)."""
