"""Prometheus metrics of one service instance, in a registry of its own."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """Request counts and latencies by route, events stored, users in memory, model version.

    Each instance has its own registry, so several apps in one process (as in tests)
    do not collide in the global one.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "metarec_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "metarec_http_request_duration_seconds",
            "Time from request start to the end of the response, in seconds.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events_stored = Counter(
            "metarec_events_stored", "Events committed to the store.", registry=self.registry
        )
        self.users_in_memory = Gauge(
            "metarec_users_in_memory", "Users with a session in memory.", registry=self.registry
        )
        self.model_info = Gauge(
            "metarec_model_info",
            "1 for the loaded model, labelled by its version and dataset.",
            ["version", "dataset"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def set_model(self, version: str, dataset: str) -> None:
        self.model_info.clear()
        self.model_info.labels(version, dataset).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
