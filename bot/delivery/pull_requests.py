"""The one pull-request handler: a PR's news re-runs triage and moves dispatch runs.

`parse` (pure) reads the issues a PR names once and emits both intents: re-triage the
triaged issues it starts or stops referencing, and follow up on dispatched ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from gidgethub import sansio

from bot.config.repo import RepoConfig
from bot.delivery.context import EventContext
from bot.dispatch import handlers as dispatch
from bot.github.references import closing_targets
from bot.mirror.formats import rest_issue
from bot.mirror.prs import issue_references
from bot.triage import handlers as triage

ACTIONS = ("opened", "edited", "closed", "reopened")
# The actions a dispatch run follows up (edits only change what triage shows).
FOLLOWED_UP = ("opened", "closed", "reopened")


@dataclass(frozen=True)
class PullRequestNews:
    retriage: tuple[triage.Triage, ...]
    moved: dispatch.PullRequestMoved | None


def parse(event: sansio.Event, config: RepoConfig) -> PullRequestNews | None:
    data, action = event.data, str(event.data.get("action"))
    if event.event != "pull_request" or action not in ACTIONS:
        return None
    repo, pull = str(data["repository"]["full_name"]), data["pull_request"]
    named = issue_references(rest_issue(repo, pull))
    old_body = ((data.get("changes") or {}).get("body") or {}).get("from") or ""
    followed_up = action in FOLLOWED_UP
    retriage: tuple[triage.Triage, ...] = ()
    if not triage.by_a_bot(data):  # bots' PRs count for dispatch runs only
        targets = {(r, n) for r, n, _ in named} | set(closing_targets(old_body, repo))
        reason = f"pull request #{pull['number']} {action}"
        retriage = tuple(
            triage.Triage(repo, number, reason, only_if_triaged=True, unless_dispatched=followed_up)
            for target_repo, number in sorted(targets)
            if target_repo == repo
        )
    moved = None
    ours = sorted({n for r, n, _ in named if r == repo})
    if followed_up and ours:
        merged = action == "closed" and bool(pull.get("merged"))
        moved = dispatch.PullRequestMoved(
            repo, pull, "merged" if merged else action, tuple(ours), dispatch.requester(data)
        )
    return PullRequestNews(retriage, moved) if retriage or moved else None


async def act(intent: PullRequestNews, ctx: EventContext) -> None:
    for job in intent.retriage:
        await triage.act(job, ctx)
    if intent.moved is not None:
        await dispatch.act_on_pull_request(intent.moved, ctx)
