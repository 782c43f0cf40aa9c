"""The shared stateful fake Slack Web API on 127.0.0.1: chat.postMessage, auth.test, and
conversations.history / conversations.replies (with message metadata, as Slack keeps it).

It answers the way Slack does: HTTP 200 with `{"ok": false, "error": ...}` for API errors
(invalid_auth, channel_not_found, invalid_blocks ...), HTTP 429 with `Retry-After` for
rate limits, and 5xx pages for outages. It checks Block Kit limits so the bot's message
builders are held to what Slack accepts, and it records every message with its `ts`
and `thread_ts`.

One server runs on its own thread and loop (like the fake GitHub) so any test's loop,
or synchronous code, can reach it; `reset()` clears state and knobs between tests.
Base URL for slack-sdk: `fake.api_url` (".../api/").
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from tests.threaded_server import ThreadedServer

TOKEN = "xoxb-fake-slack-token-0000"
MAX_BLOCKS = 50
MAX_TEXT = 40_000
# Slack refuses blocks holding much more than this in total (msg_blocks_too_long).
MAX_BLOCK_CHARS = 12_000
BLOCK_TYPES = {
    "section",
    "header",
    "context",
    "divider",
    "actions",
    "image",
    "rich_text",
    "markdown",
}


@dataclass
class PostedMessage:
    channel: str  # channel id, as Slack stores it
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    unfurl_links: Any = None


@dataclass
class Call:
    method: str
    status: int
    error: str | None = None


@dataclass
class _Faults:
    server_errors: int = 0
    server_status: int = 500
    rate_limits: int = 0
    retry_after: int = 1
    applied_then_fail: int = 0  # posts carried out, then answered with a server error


@dataclass
class _State:
    channels: dict[str, str] = field(default_factory=dict)  # name -> id
    messages: list[PostedMessage] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    invalid_auth: bool = False
    down: bool = False
    clock: int = 0


class FakeSlack(ThreadedServer):
    """Use `with FakeSlack() as fake:`; knobs: fail_next, rate_limit_next, invalid_auth, down."""

    thread_name = "fake-slack"

    token = TOKEN

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # slack-sdk reads history with GET
        return app

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def reset(self) -> None:
        with self._lock:
            self.state = _State()
            self.add_channel("dispatch", "C0DISPATCH")

    # -- knobs and seeding ----------------------------------------------------------------
    def add_channel(self, name: str, channel_id: str | None = None) -> str:
        with self._lock:
            cid = channel_id or f"C{len(self.state.channels) + 1:08d}"
            self.state.channels[name] = cid
            return cid

    def fail_next(self, times: int = 1, *, status: int = 500) -> None:
        """Answer the next `times` calls with a server error page."""
        with self._lock:
            self.state.faults.server_errors = times
            self.state.faults.server_status = status

    def rate_limit_next(self, times: int = 1, *, retry_after: int = 1) -> None:
        """Answer the next `times` calls with 429 and `Retry-After: retry_after`."""
        with self._lock:
            self.state.faults.rate_limits = times
            self.state.faults.retry_after = retry_after

    def apply_then_fail_next(self, times: int = 1, *, status: int = 502) -> None:
        """Carry out the next `times` chat.postMessage calls, then answer `status` instead."""
        with self._lock:
            self.state.faults.applied_then_fail = times
            self.state.faults.server_status = status

    def set_invalid_auth(self, on: bool = True) -> None:
        """Every token is refused (invalid_auth) until called with False."""
        with self._lock:
            self.state.invalid_auth = on

    def set_down(self, on: bool = True) -> None:
        """Every call gets 503 until called with False."""
        with self._lock:
            self.state.down = on

    # -- reading back -----------------------------------------------------------------------
    @property
    def messages(self) -> list[PostedMessage]:
        with self._lock:
            return list(self.state.messages)

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self.state.calls)

    def channel_id(self, name: str) -> str:
        return self.state.channels[name.lstrip("#")]

    def message(self, ts: str) -> PostedMessage:
        return next(m for m in self.messages if m.ts == ts)

    def replies(self, parent: PostedMessage) -> list[PostedMessage]:
        return [
            m for m in self.messages if m.thread_ts == parent.ts and m.channel == parent.channel
        ]

    def top_level(self) -> list[PostedMessage]:
        return [m for m in self.messages if m.thread_ts is None]

    # -- serving ----------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await self._args(request)
        with self._lock:
            status, payload, headers = self._answer(method, request, args)
            error = payload.get("error") if isinstance(payload, dict) else None
            self.state.calls.append(Call(method, status, error))
        if isinstance(payload, str):
            return web.Response(
                status=status, text=payload, content_type="text/html", headers=headers
            )
        return web.json_response(payload, status=status, headers=headers)

    @staticmethod
    async def _args(request: web.Request) -> dict[str, Any]:
        if request.method == "GET":
            return dict(request.query)
        raw = await request.read()
        if request.content_type == "application/json":
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                return {"__invalid_json__": True}
            return data if isinstance(data, dict) else {"__invalid_json__": True}
        form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        for name in ("blocks", "metadata"):  # form posts carry JSON as strings
            if isinstance(form.get(name), str):
                try:
                    form[name] = json.loads(form[name])
                except ValueError:
                    form[name] = {"__invalid_json__": True}
        return form

    def _answer(
        self, method: str, request: web.Request, args: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        if state.down:
            return 503, "<html><body>Service Unavailable</body></html>", {}
        if state.faults.server_errors > 0:
            state.faults.server_errors -= 1
            return state.faults.server_status, "<html><body>Internal Server Error</body></html>", {}
        if state.faults.rate_limits > 0:
            state.faults.rate_limits -= 1
            return (
                429,
                {"ok": False, "error": "ratelimited"},
                {"Retry-After": str(state.faults.retry_after)},
            )
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else args.get("token")
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        if state.invalid_auth or token != TOKEN:
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        if args.get("__invalid_json__"):
            return 200, {"ok": False, "error": "invalid_json"}, {}
        if method == "auth.test":
            return (
                200,
                {
                    "ok": True,
                    "url": "https://fake.slack.test/",
                    "team": "Fake",
                    "user": "agent-dispatch",
                    "team_id": "T0FAKE",
                    "user_id": "U0BOT",
                    "bot_id": "B0BOT",
                },
                {},
            )
        if method == "chat.postMessage":
            status, payload, headers = self._post_message(args)
            if state.faults.applied_then_fail > 0 and payload.get("ok"):
                state.faults.applied_then_fail -= 1
                return state.faults.server_status, "<html><body>Bad Gateway</body></html>", {}
            return status, payload, headers
        if method == "conversations.history":
            return self._history(args)
        if method == "conversations.replies":
            return self._replies(args)
        return 200, {"ok": False, "error": "unknown_method"}, {}

    def _listing(
        self, args: dict[str, Any], wanted: list[PostedMessage]
    ) -> tuple[int, Any, dict[str, str]]:
        """A page of `wanted` (newest first, as Slack lists history), with a cursor."""
        with_metadata = str(args.get("include_all_metadata")).lower() in ("true", "1")
        limit = max(1, min(int(args.get("limit") or 100), 999))
        start = int(args.get("cursor") or 0)
        page = wanted[start : start + limit]
        messages = []
        for m in page:
            item: dict[str, Any] = {"type": "message", "ts": m.ts, "text": m.text}
            if m.thread_ts:
                item["thread_ts"] = m.thread_ts
            if with_metadata and m.metadata:
                item["metadata"] = m.metadata
            messages.append(item)
        more = start + limit < len(wanted)
        return (
            200,
            {
                "ok": True,
                "messages": messages,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            },
            {},
        )

    def _history(self, args: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """Top-level messages of a channel (by id only, as Slack wants), newest first."""
        channel = str(args.get("channel") or "")
        if channel not in self.state.channels.values():
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        oldest = float(args.get("oldest") or 0)
        wanted = [
            m
            for m in reversed(self.state.messages)
            if m.channel == channel and m.thread_ts is None and float(m.ts) >= oldest
        ]
        return self._listing(args, wanted)

    def _replies(self, args: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """A thread: its parent first, then the replies, oldest first."""
        channel, ts = str(args.get("channel") or ""), str(args.get("ts") or "")
        parent = [m for m in self.state.messages if m.channel == channel and m.ts == ts]
        if not parent:
            return 200, {"ok": False, "error": "thread_not_found"}, {}
        thread = [m for m in self.state.messages if m.channel == channel and m.thread_ts == ts]
        return self._listing(args, parent + thread)

    def _post_message(self, args: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        state = self.state
        requested = str(args.get("channel") or "")
        ids = set(state.channels.values())
        channel = requested if requested in ids else state.channels.get(requested.lstrip("#"))
        if channel is None:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        text = args.get("text")
        blocks = args.get("blocks")
        if not text and not blocks:
            return 200, {"ok": False, "error": "no_text"}, {}
        if isinstance(text, str) and len(text) > MAX_TEXT:
            return 200, {"ok": False, "error": "msg_too_long"}, {}
        if blocks is not None:
            problems = block_problems(blocks)
            if problems:
                return 200, {"ok": False, "error": "invalid_blocks", "errors": problems}, {}
            if sum(_chars(b) for b in blocks) > MAX_BLOCK_CHARS:
                return 200, {"ok": False, "error": "msg_blocks_too_long"}, {}
        thread_ts = args.get("thread_ts") or None
        state.clock += 1
        ts = f"{int(time.time())}.{state.clock:06d}"
        posted = PostedMessage(
            channel=channel,
            ts=ts,
            text=str(text or ""),
            blocks=blocks,
            thread_ts=str(thread_ts) if thread_ts else None,
            metadata=args.get("metadata"),
            unfurl_links=args.get("unfurl_links"),
        )
        state.messages.append(posted)
        message: dict[str, Any] = {
            "type": "message",
            "user": "U0BOT",
            "bot_id": "B0BOT",
            "text": posted.text,
            "ts": ts,
        }
        if blocks is not None:
            message["blocks"] = blocks
        if posted.thread_ts:
            message["thread_ts"] = posted.thread_ts
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}, {}


def _text_of(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else ""


def _chars(block: dict[str, Any]) -> int:
    elements = block.get("elements") or []
    return len(_text_of(block.get("text"))) + sum(len(_text_of(e)) for e in elements)


def block_problems(blocks: Any) -> list[str]:
    """Block Kit limits that chat.postMessage enforces with invalid_blocks."""
    if not isinstance(blocks, list):
        return ["blocks must be an array"]
    problems = []
    if len(blocks) > MAX_BLOCKS:
        problems.append(f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]")
    for i, block in enumerate(blocks):
        where = f"[json-pointer:/blocks/{i}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind not in BLOCK_TYPES:
            problems.append(f"unsupported type: {kind!r} {where}")
            continue
        if kind == "header":
            text = block.get("text")
            if not isinstance(text, dict) or text.get("type") != "plain_text":
                problems.append(f"header text must be plain_text {where}/text")
            elif not 1 <= len(text.get("text", "")) <= 150:
                problems.append(f"must be between 1 and 150 characters {where}/text")
        elif kind == "section":
            text = block.get("text")
            if text is None and not block.get("fields"):
                problems.append(f"section needs text or fields {where}")
            if text is not None:
                if not isinstance(text, dict) or text.get("type") not in ("plain_text", "mrkdwn"):
                    problems.append(f"section text must be a text object {where}/text")
                elif not 1 <= len(text.get("text", "")) <= 3000:
                    problems.append(f"must be between 1 and 3000 characters {where}/text")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                problems.append(f"context needs 1 to 10 elements {where}/elements")
            for element in elements:
                if len(_text_of(element)) > 3000:
                    problems.append(f"context text too long {where}/elements")
    return problems
