"""braid's core library: hybrid BM25 + dense retrieval, fusion and reranking.

Nothing in here knows about the CLI, the REST API or the evaluation harness.
"""
