"""One collection abstraction for both Qdrant legs (dense vectors and BM25 sparse vectors).

``protocol.Collection`` is what a store asks of the engine that keeps its points;
``edge.EdgeCollection`` (Qdrant Edge in-process) and ``client.ClientCollection`` (a server or
qdrant-client's local mode, retries inside) implement it. The dense and the sparse stores are
written once over it; the qdrant-client connection is opened once and passed to both.
"""
