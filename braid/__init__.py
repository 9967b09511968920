"""braid: hybrid BM25 + dense search with fusion and reranking.

One import namespace over the repository's top-level layers: ``braid.engine`` (the library),
``braid.ingestion``, ``braid.api``, ``braid.eval`` and ``braid.cli``. The first four live at
the repository's top level (``engine/``, ...) and are linked into this package, so that
editable installs, mypy, import-linter and wheels all see one package named ``braid``.
"""
