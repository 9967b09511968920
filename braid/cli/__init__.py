"""The ``braid`` command: the top layer, over the API, the evaluation harness and ingestion."""
