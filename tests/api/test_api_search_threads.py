"""A server runs at most ``api.search_threads`` searches at once; queries are batched only
where they are encoded on a GPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import running_app

from braid.api.runtime import Runtime, micro_batching
from braid.engine.config import Settings
from braid.engine.searcher import HybridSearcher


class CountingSearcher:
    """The real searcher, counting how many of its searches run at the same time."""

    def __init__(self, inner: HybridSearcher) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.threads: set[str] = set()

    def search(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(0.05)  # long enough for the other requests to arrive meanwhile
            return self._inner.search(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.parametrize("threads", [1, 2])
def test_searches_run_on_the_search_threads_and_no_more_at_once(
    settings_for: Callable[..., Settings], threads: int
) -> None:
    settings = settings_for(f"threads{threads}", search_threads=threads)
    with running_app(settings) as client:
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        counting = CountingSearcher(runtime.searcher)  # type: ignore[arg-type]
        runtime.searcher = counting  # type: ignore[assignment]
        with ThreadPoolExecutor(max_workers=6) as pool:
            responses = list(
                pool.map(
                    lambda i: client.post("/v1/search", json={"query": f"rank fusion {i}"}),
                    range(6),
                )
            )
        assert [r.status_code for r in responses] == [200] * 6
        assert counting.most == threads  # six requests in flight, `threads` searching
        assert {name.rsplit("_", 1)[0] for name in counting.threads} == {"braid-search"}


def test_queries_are_batched_only_on_a_gpu() -> None:
    assert micro_batching(Settings(embedder={"device": "cpu"})) is False
    assert micro_batching(Settings(embedder={"backend": "torch", "device": "cuda"})) is True
    assert micro_batching(Settings(embedder={"backend": "torch", "device": "cpu"})) is False
    assert micro_batching(Settings(api={"micro_batch": True})) is True
    assert micro_batching(Settings(embedder={"device": "cuda"}, api={"micro_batch": False})) is (
        False
    )
