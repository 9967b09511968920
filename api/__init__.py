"""The REST API: a FastAPI app over the engine and the ingestion worker."""
