"""Verification of one webhook request, before anything is stored.

Pure functions over headers and bytes, so every rejection is a clear, testable answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any

# Edits and comments wait a little so a burst about one issue is handled once.
DEBOUNCED_EVENTS = frozenset(
    {
        ("issues", "edited"),
        ("issue_comment", "created"),
        ("issue_comment", "edited"),
        ("issue_comment", "deleted"),
        ("pull_request", "edited"),
        ("pull_request", "synchronize"),
    }
)
DELIVERY_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
EVENT_NAME = re.compile(r"^[a-z_]{1,64}$")


@dataclass(frozen=True)
class Rejection(Exception):
    status: int
    reason: str


def signature_for(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> None:
    """Only X-Hub-Signature-256 counts: a missing one or a SHA-1 one is refused."""
    if not header:
        raise Rejection(401, "missing X-Hub-Signature-256 (SHA-1 signatures are not accepted)")
    if not hmac.compare_digest(signature_for(secret, body).encode(), header.strip().encode()):
        raise Rejection(401, "signature does not match the webhook secret")


def check_headers(event: str | None, delivery_id: str | None) -> tuple[str, str]:
    if not event:
        raise Rejection(400, "missing X-GitHub-Event header")
    if not EVENT_NAME.match(event):
        raise Rejection(400, "malformed X-GitHub-Event header")
    if not delivery_id:
        raise Rejection(400, "missing X-GitHub-Delivery header")
    if not DELIVERY_ID.match(delivery_id):
        raise Rejection(400, "malformed X-GitHub-Delivery header")
    return event, delivery_id


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejection(400, f"body is not valid JSON: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise Rejection(400, "payload must be a JSON object")
    return data


def debounce_for(event: str, data: dict[str, Any], seconds: float) -> float:
    return seconds if (event, data.get("action")) in DEBOUNCED_EVENTS else 0.0
