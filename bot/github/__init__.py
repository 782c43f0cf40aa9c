"""GitHub App client layer: authentication, the client handlers use, retries, redelivery.

The names below are imported on first use, so `bot.github.references` (pure parsing) and
the command line do not pay for aiohttp and gidgethub until a client is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.github.client import GitHubClient as GitHubClient
    from bot.github.client import GitHubFactory as GitHubFactory
    from bot.github.client import GraphQLError as GraphQLError
    from bot.github.faults import GitHubRequestError as GitHubRequestError
    from bot.github.faults import GitHubUnavailable as GitHubUnavailable
    from bot.github.faults import RetryPolicy as RetryPolicy

_HOMES = {
    "GitHubClient": "bot.github.client",
    "GitHubFactory": "bot.github.client",
    "GraphQLError": "bot.github.client",
    "GitHubRequestError": "bot.github.faults",
    "GitHubUnavailable": "bot.github.faults",
    "RetryPolicy": "bot.github.faults",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'bot.github' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
