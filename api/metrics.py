"""Prometheus metrics: request counts and latencies by route, micro-batch sizes, queue depth.

Each app gets its own registry, so several apps in one process (tests) never collide, and the
route label is the path template (``/v1/rubrics/{rubric_id}``), never the raw path, so the
number of series stays bounded whatever clients request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Grading one answer takes tens of milliseconds; buckets resolve that range finely.
LATENCY_BUCKETS = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "grader_http_requests", "HTTP requests by route and status", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "grader_http_request_duration_seconds", "HTTP request latency by route", ["method", "route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.batch_size = Histogram(
            "grader_microbatch_size", "answers graded per model call (micro-batch)",
            buckets=BATCH_SIZE_BUCKETS, registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "grader_microbatch_duration_seconds", "time to grade one micro-batch",
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.queue_depth = Gauge("grader_queue_depth", "answers waiting for the model", registry=self.registry)

    def observe_batch(self, size: int, seconds: float) -> None:
        """Called by the inference worker's thread after every micro-batch."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def track_queue(self, depth: Callable[[], int]) -> None:
        self.queue_depth.set_function(depth)


class MetricsMiddleware:
    """Counts and times every HTTP request, errors included (it sits outside every other layer)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], label, str(status)).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - started)
