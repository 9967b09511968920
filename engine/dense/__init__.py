"""Dense vector stores: Qdrant Edge (embedded default) and Qdrant through qdrant-client."""
