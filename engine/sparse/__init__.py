"""Sparse (BM25) stores: Tantivy on disk."""
