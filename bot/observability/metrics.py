"""Prometheus metrics, owned by one `Metrics` object passed in the app context."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Label values come from fixed sets, so no request can grow /metrics or break its
# encoding: the events GitHub sends an App like ours, and one label for requests whose
# signature was not checked or did not match (their headers say nothing trustworthy).
EVENT_LABELS = frozenset(
    {
        "issue_comment",
        "issues",
        "label",
        "pull_request",
        "push",
        "installation",
        "installation_repositories",
        "installation_target",
        "github_app_authorization",
        "repository",
        "meta",
        "ping",
    }
)
OTHER_EVENT = "other"
UNVERIFIED = "unverified"


def event_label(event: str) -> str:
    """`event` when it is one GitHub sends us, else "other"."""
    return event if event in EVENT_LABELS else OTHER_EVENT


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

        self.outbox_oldest_waiting = Gauge(
            "agent_dispatch_outbox_oldest_pending_seconds",
            "Age of the oldest Slack notice not yet sent (0 when none waits)",
            registry=self.registry,
        )
        self.outbox_dead = Gauge(
            "agent_dispatch_outbox_dead",
            "Slack notices given up on (dead) and not retried",
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
