"""Ingestion: read documents, chunk them token-aware, embed, and write both stores."""
