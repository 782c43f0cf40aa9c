"""Property-based fuzzing of the webhook endpoint and of every parser of untrusted text
(issue 14): any input gives an answer or a value, never an exception or a 500, quickly."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.dispatch.commands import parse_dispatch_command, prose
from bot.dispatch.planner import parse_dependencies
from bot.github.references import bare_numbers, closing_targets, references, targets
from bot.mirror.prs import branch_issue_numbers
from bot.service import create_app
from bot.triage.quoting import clean, excerpt, fenced, inline
from bot.triage.text import make_part, split_code
from bot.web.intake import signature_for
from tests.service_fixtures import WEBHOOK_SECRET, make_settings
from tests.threaded_server import ThreadedServer

# Markdown and GitHub syntax in the alphabet, so examples reach the interesting paths.
MARKDOWN = st.lists(
    st.one_of(
        st.sampled_from(list("`~>#-*+[] \t\n\r/:.,&()!@_0123456789")),
        st.sampled_from(["/dispatch", "force", "depends on", "blocked by", "Fixes", "o/r", "```"]),
        st.characters(codec="utf-8"),
    ),
    max_size=120,
).map("".join)
FAST = settings(max_examples=150, deadline=500, suppress_health_check=[HealthCheck.too_slow])

PARSERS = [
    parse_dispatch_command,
    prose,
    parse_dependencies,
    references,
    bare_numbers,
    lambda text: targets(text, "o/r"),
    lambda text: closing_targets(text, "o/r"),
    branch_issue_numbers,
    clean,
    fenced,
    inline,
    excerpt,
    split_code,
    lambda text: make_part("body", text),
]


@pytest.mark.parametrize("parse", PARSERS)
@FAST
@given(text=MARKDOWN)
def test_parsers_of_untrusted_text_take_anything(parse: Callable[[str], object], text: str) -> None:
    parse(text)


class Service(ThreadedServer):
    """The whole service (dry-run) on a thread of its own, for synchronous hypothesis tests."""

    thread_name = "service-under-fuzz"

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self._tmp = tmp

    async def _serve(self) -> None:
        settings_ = make_settings(self._tmp, body_timeout_seconds=2.0)
        self._runner = web.AppRunner(await create_app(settings_), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        assert site._server is not None
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with Service(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def post(port: int, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    head += b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head + body)
        status_line = conn.makefile("rb").readline()
    return int(status_line.split()[1])


HEADER_VALUE = st.binary(max_size=80).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip()
)
EVENTS = st.one_of(st.sampled_from([b"issues", b"issue_comment", b"ping", b"push"]), HEADER_VALUE)
PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=80, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(event=EVENTS, delivery=HEADER_VALUE, body=PAYLOADS, sign=st.booleans(), bad=HEADER_VALUE)
def test_the_webhook_answers_anything_without_a_server_error(
    service: Service, event: bytes, delivery: bytes, body: bytes, sign: bool, bad: bytes
) -> None:
    signature = signature_for(WEBHOOK_SECRET, body).encode() if sign else bad
    headers = [
        (b"X-GitHub-Event", event),
        (b"X-GitHub-Delivery", delivery or b"d"),
        (b"X-Hub-Signature-256", signature),
        (b"Content-Type", b"application/json"),
    ]
    status = post(service.port, [(k, v) for k, v in headers if v], body)
    assert status in (200, 202, 400, 401, 413), status


def test_the_service_is_still_healthy_after_fuzzing(service: Service) -> None:
    async def healthz() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        line = await reader.readline()
        writer.close()
        return int(line.split()[1])

    assert asyncio.run(healthz()) == 200
