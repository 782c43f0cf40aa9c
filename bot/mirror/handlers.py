"""Keep the issue mirror and the per-repository caches fresh from webhooks.

`parse` (pure) turns a delivery into an intent; `act` applies it: every item and
comment change lands in the mirror, and a push to the default branch makes the stored
tree stale and, when it touches `.github/agent-dispatch.yml`, drops the cached config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gidgethub import sansio

from bot.config.loader import ConfigLoader
from bot.config.repo import CONFIG_PATH, RepoConfig
from bot.github.trees import TreeCache
from bot.mirror.webhooks import apply_event
from bot.store.mirror import AsyncMirrorStore

MIRRORED_EVENTS = ("issues", "issue_comment", "pull_request", "label")
# GitHub lists at most this many commits in a push payload; a longer push may hide a change.
PUSH_COMMITS_LISTED = 20


@dataclass(frozen=True)
class MirrorUpdate:
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class DefaultBranchPush:
    repo: str
    payload: dict[str, Any]
    touches_config: bool


Intent = MirrorUpdate | DefaultBranchPush


def _touches_config(payload: dict[str, Any]) -> bool:
    commits = payload.get("commits")
    if not isinstance(commits, list) or len(commits) >= PUSH_COMMITS_LISTED:
        return True  # cannot tell: assume it does
    return any(
        CONFIG_PATH in (commit.get(kind) or [])
        for commit in commits
        if isinstance(commit, dict)
        for kind in ("added", "modified", "removed")
    )


def parse(event: sansio.Event, config: RepoConfig | None) -> Intent | None:
    """What a delivery changes in the mirror or the caches (no config needed)."""
    data = event.data
    if event.event in MIRRORED_EVENTS:
        return MirrorUpdate(event.event, data)
    if event.event != "push":
        return None
    repository = data.get("repository") or {}
    repo, branch = repository.get("full_name"), repository.get("default_branch")
    if not isinstance(repo, str) or not branch or data.get("ref") != f"refs/heads/{branch}":
        return None
    return DefaultBranchPush(repo, data, _touches_config(data))


async def act(
    intent: Intent, mirror: AsyncMirrorStore, configs: ConfigLoader, trees: TreeCache
) -> None:
    if isinstance(intent, MirrorUpdate):
        await mirror.call(apply_event, intent.event, intent.payload)
        return
    await trees.on_push(intent.payload)
    if intent.touches_config:
        if intent.repo.endswith("/.github"):  # the org's defaults: every repository of it
            configs.forget_owner(intent.repo.split("/", 1)[0])
        else:
            configs.forget(intent.repo)
