"""Dispatch triggers: the dispatch label, `/dispatch` commands, and PRs for dispatched issues."""

from __future__ import annotations

import asyncio
from typing import Any

from gidgethub import routing, sansio

from bot.delivery.context import EventContext
from bot.dispatch.commands import parse_dispatch_command
from bot.dispatch.job import (
    Dispatcher,
    Requester,
    may_advance_run,
    may_dispatch,
    who_may_dispatch,
)
from bot.mirror.formats import rest_issue
from bot.mirror.prs import issue_references

router = routing.Router()


def _requester(data: dict[str, Any]) -> Requester:
    sender = data.get("sender") or {}
    return Requester(
        login=str(sender.get("login") or "unknown"), is_bot=sender.get("type") == "Bot"
    )


async def _is_ourselves(ctx: EventContext, requester: Requester) -> bool:
    return requester.is_bot and requester.login == await ctx.services.github.bot_login()


@router.register("issues", action="labeled")
async def on_dispatch_label(event: sansio.Event, ctx: EventContext) -> None:
    data = event.data
    if ctx.delivery.installation_id is None or data["issue"].get("pull_request"):
        return
    repo, number = data["repository"]["full_name"], int(data["issue"]["number"])
    loaded = await ctx.repo_config(repo)
    label = (data.get("label") or {}).get("name")
    if label != loaded.config.labels.dispatch:
        return
    requester = _requester(data)
    if await _is_ourselves(ctx, requester):
        return
    gh = await ctx.github()
    dispatcher = Dispatcher(ctx.services, ctx.log)
    allowed, why = await may_dispatch(gh, repo, requester, loaded.config)
    ctx.log.info(
        "dispatch label from %s: %s (%s)", requester.login, "allowed" if allowed else "refused", why
    )
    if not allowed:
        await dispatcher.refuse_label(
            gh,
            repo,
            number,
            label,
            [
                f"Thanks, @{requester.login}! Sending work to agents is reserved for {who_may_dispatch(loaded.config)}, "
                f"so I removed the `{label}` label and sent nothing. A maintainer can apply it.",
            ],
        )
        return
    window = loaded.config.dispatch.batch_window_seconds
    runs = ctx.services.runs
    if window == 0:
        ctx.defer(
            ("dispatch", repo, number),
            lambda: _dispatch(
                ctx, dispatcher, repo, [number], requester, f"label:{ctx.delivery.id}"
            ),
        )
        return
    runs.note_label(repo, number, requested_by=requester.login)

    async def take_window() -> None:
        wait = runs.window_due_in(repo, window_seconds=window)
        if wait:
            await asyncio.sleep(wait)
        taken = runs.take_window(repo, window_seconds=window)
        if taken:
            await _dispatch(
                ctx, dispatcher, repo, [n for n, _ in taken], requester, f"window:{ctx.delivery.id}"
            )

    ctx.defer(("dispatch-window", repo), take_window)


async def _dispatch(
    ctx: EventContext,
    dispatcher: Dispatcher,
    repo: str,
    numbers: list[int],
    requester: Requester,
    key: str,
    *,
    force: bool = False,
    source: str = "label",
    origin: int | None = None,
) -> None:
    gh = await ctx.github()
    loaded = await ctx.repo_config(repo)
    await dispatcher.dispatch(
        gh,
        repo,
        numbers,
        loaded=loaded,
        requester=requester,
        key=key,
        force=force,
        source=source,
        origin=origin,
    )


@router.register("issue_comment", action="created")
async def on_dispatch_command(event: sansio.Event, ctx: EventContext) -> None:
    """`/dispatch`, `/dispatch force`, or `/dispatch #12 #15 #18` from a maintainer."""
    data = event.data
    if not ctx.should_act(data):
        return
    command = parse_dispatch_command(str(data["comment"].get("body") or ""))
    if command is None:
        return
    repo, number = data["repository"]["full_name"], int(data["issue"]["number"])
    loaded = await ctx.repo_config(repo)
    requester = Requester(login=str(data["comment"]["user"]["login"]))
    gh = await ctx.github()
    dispatcher = Dispatcher(ctx.services, ctx.log)
    allowed, why = await may_dispatch(gh, repo, requester, loaded.config)
    ctx.log.info(
        "/dispatch from %s: %s (%s)", requester.login, "allowed" if allowed else "refused", why
    )
    if not allowed:
        await dispatcher.say(
            gh,
            repo,
            number,
            [
                f"Thanks, @{requester.login}! `/dispatch` is reserved for {who_may_dispatch(loaded.config)}, so nothing was sent.",
            ],
        )
        return
    numbers = list(command.numbers) or [number]
    key = f"comment:{data['comment']['id']}"
    ctx.defer(
        ("dispatch-command", repo, key),
        lambda: _dispatch(
            ctx,
            dispatcher,
            repo,
            numbers,
            requester,
            key,
            force=command.force,
            source="command",
            origin=number,
        ),
    )


@router.register("pull_request", action="opened")
@router.register("pull_request", action="closed")
@router.register("pull_request", action="reopened")
async def on_pull_request(event: sansio.Event, ctx: EventContext) -> None:
    """PR news for dispatched issues. Agents often open PRs from bot accounts, so bots count here."""
    data = event.data
    if ctx.delivery.installation_id is None or await _is_ourselves(ctx, _requester(data)):
        return
    repo = data["repository"]["full_name"]
    pull = data["pull_request"]
    targets = sorted({n for r, n, _ in issue_references(rest_issue(repo, pull)) if r == repo})
    if not targets or not any(ctx.services.runs.runs_for_issue(repo, n) for n in targets):
        return
    action = (
        "merged"
        if data.get("action") == "closed" and pull.get("merged")
        else str(data.get("action"))
    )

    async def follow_up() -> None:
        gh = await ctx.github()
        author = str((pull.get("user") or {}).get("login") or "")
        if action != "merged":
            role = await gh.get_permission(repo, author) if author else "none"
            if not may_advance_run(merged=False, author_role=role):
                ctx.log.info(
                    "PR #%s by %s (%s) moves no dispatch run", pull["number"], author, role
                )
                return
        loaded = await ctx.repo_config(repo)
        await Dispatcher(ctx.services, ctx.log).pull_request_moved(
            gh, repo, pull, action, targets, loaded
        )

    ctx.defer(("pr-follow-up", repo, pull["number"], action), follow_up)
