"""Sentry events carry no issue text, token or secret (issue 14, item 6)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from bot.observability.logs import Redactor, init_sentry
from tests.service_fixtures import WEBHOOK_SECRET, make_settings

BODY = "Private issue text: the launch codes are 0000"
TOKEN = "ghs_" + "T" * 36
SLACK_TOKEN = "xoxb-1234567890-abcdefghij"


class CapturingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def text(self) -> str:
        return "\n".join(
            item.get_bytes().decode("utf-8", "replace")
            for envelope in self.envelopes
            for item in envelope.items
        )


@pytest.fixture
def sentry(tmp_path: Path) -> Iterator[CapturingTransport]:
    settings = make_settings(
        tmp_path, sentry_dsn="https://key@sentry.example.org/1", slack_token=SLACK_TOKEN
    )
    transport = CapturingTransport()
    assert init_sentry(settings, Redactor.from_settings(settings), transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.init()  # no DSN: a disabled client for the tests that follow


def handle(data: dict[str, Any], body: bytes) -> None:
    token = TOKEN
    secret = WEBHOOK_SECRET
    raise RuntimeError(f"handler failed for delivery {len(body)} ({type(token)}, {len(secret)})")


def test_captured_exceptions_hold_no_frame_variables(sentry: CapturingTransport) -> None:
    try:
        handle({"comment": {"body": BODY}}, BODY.encode())
    except RuntimeError:
        sentry_sdk.capture_exception()
    try:
        handle({"issue": {"title": BODY}}, BODY.encode())
    except RuntimeError:
        logging.getLogger("bot.delivery.workers").exception("unexpected failure")
    sentry_sdk.flush()
    text = sentry.text()
    events = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert sum("exception" in e for e in events) == 2
    for secret in (BODY, TOKEN, WEBHOOK_SECRET, SLACK_TOKEN, "launch codes"):
        assert secret not in text
    assert '"vars"' not in text
