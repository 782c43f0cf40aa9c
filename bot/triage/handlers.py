"""Triage triggers: the trigger label, new issues (if configured), and changes to a triaged issue.

Handlers only decide whether to triage; the run itself is deferred to the end of the
batch, so a burst of edits and comments about one issue is triaged once.
"""

from __future__ import annotations

from typing import Any

from gidgethub import routing, sansio

from bot.delivery.context import EventContext
from bot.github.references import closing_targets
from bot.mirror.formats import rest_issue
from bot.mirror.prs import issue_references
from bot.triage.job import TriageJob

router = routing.Router()


def schedule_triage(ctx: EventContext, repo: str, number: int, reason: str) -> None:
    async def run() -> None:
        gh = await ctx.github()
        loaded = await ctx.repo_config(repo)
        await TriageJob(ctx.services, ctx.log).run(gh, repo, number, loaded=loaded)

    ctx.log.info("triage of %s#%d scheduled: %s", repo, number, reason)
    ctx.defer(("triage", repo, number), run)


def _repo(data: dict[str, Any]) -> str:
    return str(data["repository"]["full_name"])


@router.register("issues", action="labeled")
async def on_labeled(event: sansio.Event, ctx: EventContext) -> None:
    data = event.data
    if not ctx.should_act(data) or data["issue"].get("pull_request"):
        return
    repo = _repo(data)
    loaded = await ctx.repo_config(repo)
    if (data.get("label") or {}).get("name") == loaded.config.labels.trigger:
        schedule_triage(
            ctx, repo, data["issue"]["number"], f"labelled {loaded.config.labels.trigger}"
        )


@router.register("issues", action="opened")
async def on_opened(event: sansio.Event, ctx: EventContext) -> None:
    data = event.data
    if not ctx.should_act(data):
        return
    repo = _repo(data)
    loaded = await ctx.repo_config(repo)
    if loaded.config.labels.triage_on_open:
        schedule_triage(ctx, repo, data["issue"]["number"], "new issue (triage_on_open)")


@router.register("issues", action="edited")
@router.register("issues", action="reopened")
@router.register("issue_comment", action="created")
@router.register("issue_comment", action="edited")
@router.register("issue_comment", action="deleted")
async def on_issue_changed(event: sansio.Event, ctx: EventContext) -> None:
    """A triaged issue changed: its triage (comment and prompt) follows."""
    data = event.data
    if not ctx.should_act(data) or data["issue"].get("pull_request"):
        return
    repo, number = _repo(data), data["issue"]["number"]
    if ctx.services.records.latest(repo, number) is not None:
        schedule_triage(ctx, repo, number, f"{event.event}.{data.get('action')}")


@router.register("pull_request", action="opened")
@router.register("pull_request", action="edited")
@router.register("pull_request", action="closed")
@router.register("pull_request", action="reopened")
async def on_pull_request(event: sansio.Event, ctx: EventContext) -> None:
    """PRs that start or stop referencing a triaged issue re-run its triage."""
    data = event.data
    if not ctx.should_act(data):
        return
    repo = _repo(data)
    pull = data["pull_request"]
    old_body = ((data.get("changes") or {}).get("body") or {}).get("from") or ""
    targets = {(r, n) for r, n, _ in issue_references(rest_issue(repo, pull))} | set(
        closing_targets(old_body, repo)
    )
    followed_up = data.get("action") in ("opened", "closed", "reopened")
    for target_repo, number in sorted(targets):
        if followed_up and ctx.services.runs.runs_for_issue(repo, number):
            continue  # the dispatch follow-up re-runs this issue's triage itself
        if target_repo == repo and ctx.services.records.latest(repo, number) is not None:
            schedule_triage(
                ctx, repo, number, f"pull request #{pull['number']} {data.get('action')}"
            )
