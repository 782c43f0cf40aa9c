"""Prometheus metrics, owned by one `Metrics` object passed in the app context."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "agent_dispatch_deliveries_total",
            "Webhook deliveries by event and outcome",
            ["event", "status"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "agent_dispatch_queue_depth",
            "Deliveries acknowledged but not yet finished",
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "agent_dispatch_handler_seconds",
            "Time to process one delivery through the routers",
            ["event"],
            registry=self.registry,
        )
        self.github_requests = Counter(
            "agent_dispatch_github_requests_total",
            "Requests made to the GitHub API",
            ["method", "status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
