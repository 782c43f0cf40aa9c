"""Slack: the client (with the retry handlers slack-sdk leaves out) and pure message builders.

Builders return `{"text": fallback, "blocks": [...]}` ready for chat.postMessage. Issue
text is untrusted: everything that came from GitHub is escaped so a title cannot ping
`<!channel>` or forge a link, and long text is cut to Block Kit's limits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.config.settings import Settings
from bot.dispatch.planner import BatchPlan

log = logging.getLogger(__name__)

Message = dict[str, Any]
PREvent = Literal["opened", "merged", "closed", "reopened"]

# Block Kit limits (chat.postMessage answers invalid_blocks / msg_blocks_too_long beyond them).
MAX_BLOCKS = 50
HEADER_CHARS = 150
SECTION_CHARS = 3000
CONTEXT_CHARS = 2000
FALLBACK_CHARS = 3000
# Slack rejects messages whose blocks hold much more than ~13k characters in total.
BATCH_BLOCK_BUDGET = 11_000
LEFT_OUT_CHARS = 500

VERDICT_EMOJI = {
    "actionable": ":white_check_mark:",
    "needs-info": ":grey_question:",
    "needs-hardware": ":electric_plug:",
    "needs-decision": ":thinking_face:",
    "question": ":speech_balloon:",
    "duplicate": ":twisted_rightwards_arrows:",
    "close-candidate": ":wastebasket:",
}
PR_EVENT_WORDS = {
    "opened": ":arrow_heading_up: opened",
    "reopened": ":arrow_heading_up: reopened",
    "merged": ":tada: merged",
    "closed": ":x: closed without merging",
}


# -- the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackRetryPolicy:
    """How hard one chat.postMessage call tries before the outbox takes over.

    A rate limit is waited out in the call only when Slack asks for a short pause; a
    longer Retry-After is handed back to the outbox, which reschedules the message
    instead of holding the sender.
    """

    rate_limit_retries: int = 2
    max_inline_retry_after: float = 5.0
    server_error_retries: int = 2
    server_error_backoff: float = 0.5
    connection_retries: int = 2
    timeout_seconds: int = 15


DEFAULT_POLICY = SlackRetryPolicy()


class ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (honours Retry-After), limited to short pauses."""

    def __init__(self, max_retry_count: int, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait = max_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return retry_after_seconds(response.headers) <= self.max_wait


def retry_after_seconds(headers: Mapping[str, Any], default: float = 1.0) -> float:
    """Retry-After as seconds, whatever the header's casing or list wrapping."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return default
    return default


def retry_handlers(policy: SlackRetryPolicy) -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=policy.connection_retries),
        ShortRateLimitRetryHandler(policy.rate_limit_retries, policy.max_inline_retry_after),
        AsyncServerErrorRetryHandler(
            max_retry_count=policy.server_error_retries,
            interval_calculator=BackoffRetryIntervalCalculator(policy.server_error_backoff),
        ),
    ]


def make_client(
    token: str,
    *,
    base_url: str,
    policy: SlackRetryPolicy = DEFAULT_POLICY,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient:
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=policy.timeout_seconds,
        session=session,
        retry_handlers=retry_handlers(policy),
    )


def client_from_settings(
    settings: Settings,
    *,
    policy: SlackRetryPolicy = DEFAULT_POLICY,
    session: aiohttp.ClientSession | None = None,
) -> AsyncWebClient | None:
    """The Slack client, or None when no token is set (dry-run: messages are recorded)."""
    if settings.slack_token is None or not settings.slack_token.get_secret_value():
        return None
    return make_client(
        settings.slack_token.get_secret_value(),
        base_url=settings.slack_api_url,
        policy=policy,
        session=session,
    )


def choose_channel(repo_channel: str | None, default_channel: str | None) -> str | None:
    """The repository's `slack.channel` wins over BOT_SLACK_CHANNEL."""
    return repo_channel or default_channel


# -- text helpers -------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters; after this, text cannot mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def link(url: str | None, label: str) -> str:
    """A mrkdwn link; without a usable URL, the escaped label alone."""
    if not url or not url.startswith(("https://", "http://")) or any(c in url for c in "<>| \n"):
        return escape(label)
    return f"<{url.replace('&', '&amp;')}|{escape(label)}>"


def code_block(text: str) -> str:
    # A ``` inside would end the block early; a zero-width space keeps it literal.
    return "```" + escape(text).replace("```", "``\u200b`") + "```"


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_CHARS)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, CONTEXT_CHARS)}]}


def _header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(one_line(text), HEADER_CHARS), "emoji": True},
    }


def _message(fallback: str, blocks: list[dict[str, Any]]) -> Message:
    """The fallback `text` (notifications, screen readers) is mrkdwn too: escaped whole."""
    return {"text": clip(escape(fallback), FALLBACK_CHARS), "blocks": blocks[:MAX_BLOCKS]}


# -- the dispatch notice ----------------------------------------------------------------


@dataclass(frozen=True)
class DispatchNotice:
    """What the team is told when an issue is dispatched to an agent."""

    repo: str
    number: int
    title: str
    url: str
    verdict: str
    summary: str
    artifact_url: str
    launch_command: str


def dispatch_message(notice: DispatchNotice) -> Message:
    """Title and link, verdict, one-line summary, prompt link and the launch command."""
    emoji = VERDICT_EMOJI.get(notice.verdict, ":robot_face:")
    summary = one_line(notice.summary) or "(no summary)"
    blocks = [
        _header(f"Dispatched: {notice.repo}#{notice.number}"),
        _section(f"*{link(notice.url, f'#{notice.number} {clip(one_line(notice.title), 200)}')}*"),
        _section(f"{emoji} *Verdict:* `{escape(notice.verdict)}`\n{escape(clip(summary, 500))}"),
        _section(f"*Prompt:* {link(notice.artifact_url, f'issue-{notice.number}.md')}"),
        _section("*Launch:*\n" + code_block(notice.launch_command)),
    ]
    fallback = (
        f"Dispatched {notice.repo}#{notice.number}: {one_line(notice.title)} ({notice.verdict})"
    )
    return _message(fallback, blocks)


# -- the batch plan -------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchEntry:
    """How one issue of a batch is shown: title, link and (when dispatched) its command."""

    title: str = ""
    url: str | None = None
    artifact_url: str | None = None
    launch_command: str | None = None


@dataclass
class _Budget:
    """Room left in one message (Slack caps blocks and their total characters)."""

    chars: int
    blocks: int
    left_out: list[int] = field(default_factory=list)

    def take(self, chars: int, blocks: int) -> bool:
        if chars > self.chars or blocks > self.blocks:
            return False
        self.chars -= chars
        self.blocks -= blocks
        return True


def batch_plan_message(
    repo: str,
    plan: BatchPlan,
    entries: Mapping[int, BatchEntry],
    *,
    requested_by: str | None = None,
) -> Message:
    """One message for a batch: waves with each dispatched issue's launch command, queued
    issues (they go out when earlier work lands), refused ones with why, and a summary."""
    dispatched, queued = set(plan.dispatch_now), set(plan.queued)
    summary = (
        f"*{len(plan.dispatch_now)} dispatched*, {len(plan.queued)} queued, "
        f"{len(plan.refused)} refused (at most {plan.max_in_flight} in flight)"
    )
    by = f" by {escape(requested_by)}" if requested_by else ""
    head = [_header(f"Batch dispatch: {repo}"), _section(summary + by)]
    tail: list[dict[str, Any]] = []
    if plan.refused:
        reasons = "\n".join(
            f"• #{n}: {escape(clip(one_line(why), 200))}" for n, why in sorted(plan.refused.items())
        )
        tail.append(_section(f"*Refused*\n{reasons}"))
    # What is left after the head, the refused list and room for a "not shown" note.
    used = sum(len(b["text"]["text"]) for b in head + tail)
    budget = _Budget(chars=BATCH_BLOCK_BUDGET - used - LEFT_OUT_CHARS, blocks=MAX_BLOCKS - 4)
    body: list[dict[str, Any]] = []

    def line(number: int) -> str:
        entry = entries.get(number, BatchEntry())
        label = f"#{number} {clip(one_line(entry.title), 120)}".rstrip()
        deps = sorted(plan.dependencies.get(number, ()))
        after = f" (after {', '.join(f'#{d}' for d in deps)})" if deps else ""
        state = ":rocket:" if number in dispatched else ":hourglass_flowing_sand:"
        text = f"{state} {link(entry.url, label)}{after}"
        if number in dispatched:
            if entry.artifact_url:
                text += f" · {link(entry.artifact_url, 'prompt')}"
            if entry.launch_command:
                text += "\n" + code_block(entry.launch_command)
        elif number in queued:
            text += " · _queued_"
        return text

    for index, wave in enumerate(plan.waves, start=1):
        shown = [_section(f"*Wave {index}*")]
        for number in wave:
            block = _section(line(number))
            # A wave's title is only worth its room together with its first issue.
            cost = len(block["text"]["text"]) + (20 if len(shown) == 1 else 0)
            # Once one issue does not fit, the rest are listed by number: the plan reads in order.
            if not budget.left_out and budget.take(cost, 2 if len(shown) == 1 else 1):
                shown.append(block)
            else:
                budget.left_out.append(number)
        if len(shown) > 1:
            body.extend(shown)

    if budget.left_out:
        more = ", ".join(f"#{n}" for n in budget.left_out)
        note = clip(f"Not shown here to fit Slack's limits: {more}", LEFT_OUT_CHARS - 30)
        tail.append(_context(note + "; see the run record."))
    fallback = (
        f"Batch dispatch for {repo}: {len(plan.dispatch_now)} dispatched, "
        f"{len(plan.queued)} queued, {len(plan.refused)} refused"
    )
    return _message(fallback, head + body + tail)


# -- thread replies -------------------------------------------------------------------------


def pr_reply_message(
    *,
    repo: str,
    issue_number: int,
    pr_number: int,
    pr_title: str,
    pr_url: str | None,
    event: PREvent,
    author: str | None = None,
) -> Message:
    """The reply posted in a dispatch's thread when a PR for the issue moves."""
    words = PR_EVENT_WORDS[event]
    label = f"#{pr_number} {clip(one_line(pr_title), 200)}".rstrip()
    by = f" by {escape(author)}" if author else ""
    text = f"{words}: {link(pr_url, label)}{by} (for {escape(repo)}#{issue_number})"
    fallback = f"PR #{pr_number} {event.replace('closed', 'closed without merging')} for {repo}#{issue_number}"
    return _message(fallback, [_section(text)])


def text_reply_message(text: str) -> Message:
    """A plain reply (e.g. 'released from the queue'); the text is escaped."""
    return _message(one_line(text), [_section(escape(text))])
