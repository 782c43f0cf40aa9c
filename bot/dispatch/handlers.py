"""Dispatch triggers: the dispatch label, `/dispatch` commands, and PRs for dispatched issues.

`parse` (pure) turns a delivery into an intent; `act` checks who asked and plans the
dispatch, deferred to the end of the batch.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gidgethub import sansio

from bot.config.repo import RepoConfig
from bot.delivery.context import EventContext
from bot.delivery.inbox import describe
from bot.dispatch.commands import DispatchCommand, parse_dispatch_command
from bot.dispatch.job import (
    Dispatcher,
    Requester,
    may_advance_run,
    may_dispatch,
    who_may_dispatch,
)
from bot.errors import RetryLater

# A delivery the bot queues for itself (never sent by GitHub): the label window closing.
WINDOW_EVENT = "agent_dispatch_window"


@dataclass(frozen=True)
class LabelApplied:
    repo: str
    number: int
    label: str
    requester: Requester


@dataclass(frozen=True)
class CommandGiven:
    repo: str
    number: int
    command: DispatchCommand
    requester: Requester
    comment_id: int


@dataclass(frozen=True)
class PullRequestMoved:
    """A PR was opened, merged, closed or reopened; `targets` are the issues it names."""

    repo: str
    pull: dict[str, Any]
    action: str  # opened, merged, closed, reopened
    targets: tuple[int, ...]
    sender: Requester


Intent = LabelApplied | CommandGiven


def requester(data: dict[str, Any]) -> Requester:
    sender = data.get("sender") or {}
    return Requester(
        login=str(sender.get("login") or "unknown"), is_bot=sender.get("type") == "Bot"
    )


def parse(event: sansio.Event, config: RepoConfig) -> Intent | None:
    data, action = event.data, event.data.get("action")
    issue = data.get("issue")
    if not isinstance(issue, dict):
        return None
    repo, number = str(data["repository"]["full_name"]), int(issue["number"])
    if event.event == "issues" and action == "labeled" and not issue.get("pull_request"):
        label = (data.get("label") or {}).get("name")
        if label == config.labels.dispatch:
            return LabelApplied(repo, number, label, requester(data))
        return None
    if event.event == "issue_comment" and action == "created" and not requester(data).is_bot:
        comment = data["comment"]
        command = parse_dispatch_command(str(comment.get("body") or ""))
        if command is None:
            return None
        login = str(comment["user"]["login"])
        return CommandGiven(repo, number, command, Requester(login=login), int(comment["id"]))
    return None


async def _is_ourselves(ctx: EventContext, who: Requester) -> bool:
    return who.is_bot and who.login == await ctx.services.github.bot_login()


async def act(intent: Intent, ctx: EventContext, config: RepoConfig) -> None:
    if isinstance(intent, LabelApplied):
        await _on_label(intent, ctx, config)
    else:
        await _on_command(intent, ctx, config)


async def _on_label(intent: LabelApplied, ctx: EventContext, config: RepoConfig) -> None:
    repo, number, label, who = intent.repo, intent.number, intent.label, intent.requester
    if await _is_ourselves(ctx, who):
        return
    gh = await ctx.github()
    dispatcher = Dispatcher(ctx.services, ctx.log)
    allowed, why = await may_dispatch(gh, repo, who, config)
    ctx.log.info(
        "dispatch label from %s: %s (%s)", who.login, "allowed" if allowed else "refused", why
    )
    if not allowed:
        await dispatcher.refuse_label(
            gh,
            repo,
            number,
            label,
            [
                f"Thanks, @{who.login}! Sending work to agents is reserved for "
                f"{who_may_dispatch(config)}, so I removed the `{label}` label and sent "
                "nothing. A maintainer can apply it.",
            ],
        )
        return
    window = config.dispatch.batch_window_seconds
    runs = ctx.services.runs
    if window == 0:
        ctx.defer(
            ("dispatch", repo, number),
            lambda: _dispatch(ctx, dispatcher, repo, [number], who, f"label:{ctx.delivery.id}"),
        )
        return
    await runs.note_label(repo, number, requested_by=who.login)
    # The window closes in a delivery of our own, delayed in the inbox: no worker waits.
    due = await runs.window_due_in(repo, window_seconds=window) or 0.0
    payload = {
        "repository": {"full_name": repo},
        "installation": {"id": ctx.delivery.installation_id},
        "window_seconds": window,
    }
    body = json.dumps(payload).encode()
    row = describe(
        WINDOW_EVENT, payload, f"{WINDOW_EVENT}:{ctx.delivery.id}", body, now=time.time(), delay=due
    )
    await ctx.services.inbox.add(row)
    ctx.log.info("%s#%d waits in the dispatch window of %s (%.0f s)", repo, number, repo, due)


@dataclass(frozen=True)
class WindowDue:
    repo: str
    window_seconds: float


def parse_window(event: sansio.Event) -> WindowDue | None:
    """The delayed delivery that closes a repository's dispatch window."""
    data = event.data
    repo = (data.get("repository") or {}).get("full_name")
    if event.event != WINDOW_EVENT or not isinstance(repo, str):
        return None
    return WindowDue(repo, float(data.get("window_seconds") or 0))


async def on_window_due(event: sansio.Event, ctx: EventContext) -> None:
    """Dispatch every issue labelled within the window as one batch."""
    due = parse_window(event)
    if due is None:
        return
    runs = ctx.services.runs
    wait = await runs.window_due_in(due.repo, window_seconds=due.window_seconds)
    if wait is None:
        return  # an earlier closing took this window's issues
    if wait > 0:
        raise RetryLater(wait, "the dispatch window is still open")
    taken = await runs.take_window(due.repo, window_seconds=due.window_seconds)
    if not taken:
        return
    first = Requester(login=taken[0][1] or "unknown")
    numbers = [n for n, _ in taken]
    key = f"window:{ctx.delivery.id}"
    dispatcher = Dispatcher(ctx.services, ctx.log)
    ctx.defer(
        ("dispatch-window", due.repo),
        lambda: _dispatch(ctx, dispatcher, due.repo, numbers, first, key),
    )


async def _dispatch(
    ctx: EventContext,
    dispatcher: Dispatcher,
    repo: str,
    numbers: list[int],
    who: Requester,
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
        requester=who,
        key=key,
        force=force,
        source=source,
        origin=origin,
    )


async def _on_command(intent: CommandGiven, ctx: EventContext, config: RepoConfig) -> None:
    """`/dispatch`, `/dispatch force`, or `/dispatch #12 #15 #18` from a maintainer."""
    repo, number, who, command = intent.repo, intent.number, intent.requester, intent.command
    gh = await ctx.github()
    dispatcher = Dispatcher(ctx.services, ctx.log)
    allowed, why = await may_dispatch(gh, repo, who, config)
    ctx.log.info("/dispatch from %s: %s (%s)", who.login, "allowed" if allowed else "refused", why)
    if not allowed:
        await dispatcher.say(
            gh,
            repo,
            number,
            [f"`/dispatch` is reserved for {who_may_dispatch(config)}, so nothing was sent."],
            only_first=True,
        )
        return
    numbers = list(command.numbers) or [number]
    key = f"comment:{intent.comment_id}"
    ctx.defer(
        ("dispatch-command", repo, key),
        lambda: _dispatch(
            ctx,
            dispatcher,
            repo,
            numbers,
            who,
            key,
            force=command.force,
            source="command",
            origin=number,
        ),
    )


async def act_on_pull_request(intent: PullRequestMoved, ctx: EventContext) -> None:
    """PR news for dispatched issues. Agents often open PRs from bot accounts, so bots count."""
    repo, pull, action, targets = intent.repo, intent.pull, intent.action, list(intent.targets)
    if await _is_ourselves(ctx, intent.sender):
        return
    if not [n for n in targets if await ctx.services.runs.runs_for_issue(repo, n)]:
        return

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
