"""GitHub App client layer: authentication, the client handlers use, retries, redelivery."""

from bot.github.client import GitHubClient, GitHubFactory, GraphQLError
from bot.github.faults import GitHubRequestError, GitHubUnavailable, RetryPolicy, UnknownOutcome

__all__ = [
    "GitHubClient",
    "GitHubFactory",
    "GitHubRequestError",
    "GitHubUnavailable",
    "GraphQLError",
    "RetryPolicy",
    "UnknownOutcome",
]
