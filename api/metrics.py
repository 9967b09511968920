"""Prometheus metrics of one app: request latency per endpoint, search stages, queue, errors.

Each app gets its own ``CollectorRegistry`` (several apps in one test process must not
collide in the global one). With ``braid serve --workers N`` every worker process exposes
its own figures at ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from braid.engine.models import SearchResponse

# Seconds; search latency on a CPU spans sub-millisecond BM25 to second-long reranking.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
_STAGES = ("embed", "dense", "sparse", "fuse", "rerank", "fetch", "total")


class Metrics:
    """The app's collectors; ``render()`` is the ``/metrics`` body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "braid_http_requests",
            "HTTP requests by endpoint and status",
            ["method", "endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "braid_http_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "braid_http_errors",
            "error responses by code",
            ["status", "code"],
            registry=self.registry,
        )
        self.search_stage = Histogram(
            "braid_search_stage_duration_seconds",
            "time spent in each search stage",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.searches = Counter(
            "braid_searches", "searches by mode", ["mode"], registry=self.registry
        )
        self.search_hits = Histogram(
            "braid_search_hits",
            "hits returned per search",
            buckets=(0, 1, 5, 10, 20, 50, 100, 1000),
            registry=self.registry,
        )
        self.embedded_texts = Counter(
            "braid_embedded_texts", "texts embedded by /v1/embed", ["kind"], registry=self.registry
        )
        self.jobs_finished = Counter(
            "braid_jobs_finished",
            "ingestion jobs finished, by kind and state",
            ["kind", "state"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "braid_queue_depth", "queued plus running ingestion jobs", registry=self.registry
        )
        self.ready = Gauge("braid_ready", "1 when /readyz is ready", registry=self.registry)
        self.query_batch = Histogram(
            "braid_query_embed_batch_size",
            "queries encoded together by the micro-batcher",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        for stage in _STAGES:  # present from the first scrape, not only after a search
            self.search_stage.labels(stage=stage)

    def observe_search(self, response: SearchResponse) -> None:
        self.searches.labels(mode=response.mode).inc()
        self.search_hits.observe(len(response.hits))
        for stage, ms in response.timings_ms.items():
            self.search_stage.labels(stage=stage).observe(ms / 1000.0)

    def count_error(self, status: int, code: str) -> None:
        self.errors.labels(status=str(status), code=code).inc()

    def track_queue_depth(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Times every request and counts it by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.latency.labels(method=method, endpoint=endpoint).observe(
                time.perf_counter() - started
            )
            self.metrics.requests.labels(method=method, endpoint=endpoint, status=str(status)).inc()
